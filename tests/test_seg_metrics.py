"""seg_bridge.evaluation.metrics against numbers worked out by hand: a perfect
mask, a half-overlapping one, a miss, a false positive; cgF1 as SAM 3's own
evaluator computes it."""

import numpy as np
import pytest

pytest.importorskip('pycocotools')

from seg_bridge.evaluation.metrics import Pair, evaluate_pairs, mcc, pair_metrics  # noqa: E402
from seg_bridge.outputs import coco_rle  # noqa: E402

SIZE = (40, 40)


def square(top, left, side=10):
  mask = np.zeros(SIZE, bool)
  mask[top:top + side, left:left + side] = True
  return coco_rle(mask)


def pair(prompt, truth, predicted, image='a', scores=None, crowd=()):
  return Pair(image, prompt, SIZE, truth, predicted, scores or [0.9] * len(predicted), list(crowd))


def test_a_perfect_mask_scores_one_everywhere():
  results = evaluate_pairs([pair('dog', [square(5, 5)], [square(5, 5)])], ['dog'])
  for name in ('*', 'dog'):
    m = results[name]
    assert (m['gIoU'], m['cIoU'], m['pmF1']) == (1.0, 1.0, 1.0)
    assert (m['AP'], m['AP50'], m['AP75']) == pytest.approx((1.0, 1.0, 1.0))  # pycocotools' sums: 1 - 2e-16.
    assert (m['precision'], m['recall']) == (1.0, 1.0)
    assert m['presence'] == {'TP': 1, 'FP': 0, 'FN': 0, 'TN': 0}
    assert m['MCC'] == 0.0 and m['cgF1'] == 0.0  # No negative pair: MCC is undefined, counted 0 (as SAM 3's).


def test_a_half_overlapping_mask():
  # Truth rows 5-14, cols 5-14; prediction shifted right by 5: 50 px shared, 150 px in the union.
  results = evaluate_pairs([pair('dog', [square(5, 5)], [square(5, 10)])], ['dog'])['dog']
  assert results['gIoU'] == pytest.approx(1 / 3) and results['cIoU'] == pytest.approx(1 / 3)
  assert results['AP50'] == 0.0 and results['AP'] == 0.0  # IoU 1/3 is below every COCO threshold.
  assert results['pmF1'] == 0.0 and results['presence']['TP'] == 1


def test_a_miss_and_a_false_positive_with_correct_negatives():
  pairs = [pair('dog', [square(5, 5)], [square(5, 5)], image='hit'),
           pair('dog', [square(20, 20)], [], image='miss'),              # On an image with the dog: nothing.
           pair('dog', [], [square(0, 0)], image='false'),                # On one without: something.
           pair('dog', [], [], image='empty'),                            # Nothing and nothing: right.
           pair('dog', [], [], image='empty2')]
  m = evaluate_pairs(pairs, ['dog'])['dog']
  assert m['gIoU'] == pytest.approx((1 + 0 + 0 + 1 + 1) / 5)
  assert m['cIoU'] == pytest.approx(100 / (100 + 100 + 100))
  assert m['presence'] == {'TP': 1, 'FP': 1, 'FN': 1, 'TN': 2}
  assert (m['precision'], m['recall']) == (0.5, 0.5)
  expected_mcc = (1 * 2 - 1 * 1) / np.sqrt(2 * 2 * 3 * 3)
  assert m['MCC'] == pytest.approx(expected_mcc)
  # pmF1 over the pairs with a dog: 1 TP, 0 FP there (the false positive is on a negative pair), 1 FN.
  assert m['pmF1'] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
  assert m['cgF1'] == pytest.approx(100 * (2 / 3) * expected_mcc)
  assert m['AP50'] == pytest.approx(0.5, abs=0.01)  # One of two dogs found, at precision 1 (COCO's 101 points).


def test_cgf1_matches_one_to_one_and_counts_thresholds():
  # Two true squares; three predictions: an exact one, one at IoU 0.6 with the second square, one elsewhere.
  truth = [square(0, 0), square(20, 20)]
  shifted = np.zeros(SIZE, bool)
  shifted[20:30, 22:32] = True  # 80 shared of 120: IoU 2/3.
  predicted = [square(0, 0), coco_rle(shifted), square(30, 0)]
  m = pair_metrics([pair('dog', truth, predicted), pair('dog', [], [], image='b')])
  thresholds = np.linspace(0.5, 0.95, 10)
  tp = 1 + (thresholds <= 2 / 3)
  precision, recall = tp / 3, tp / 2
  assert m['pmF1'] == pytest.approx(np.mean(2 * precision * recall / (precision + recall)))
  assert m['MCC'] == 1.0 and m['cgF1'] == pytest.approx(100 * m['pmF1'])


def test_two_prompts_are_scored_apart_and_together():
  pairs = [pair('dog', [square(5, 5)], [square(5, 5)]), pair('cat', [square(20, 20)], [])]
  results = evaluate_pairs(pairs, ['cat', 'dog'])
  assert results['dog']['gIoU'] == 1.0 and results['cat']['gIoU'] == 0.0 and results['*']['gIoU'] == 0.5
  assert results['dog']['AP'] == pytest.approx(1.0) and results['cat']['AP'] == 0.0 and results['*']['AP'] == pytest.approx(0.5)


def test_a_prompt_without_any_true_instance_has_no_ap():
  results = evaluate_pairs([pair('dog', [], [square(5, 5)])], ['dog'])['dog']
  assert results['AP'] is None and results['gIoU'] == 0.0 and results['presence']['FP'] == 1


def test_crowd_regions_are_ignored_as_coco_and_sam3_ignore_them():
  # A person and, elsewhere, a crowd of them; the crowd is predicted first, at the higher score.
  m = evaluate_pairs([pair('person', [square(5, 5)], [square(25, 25), square(5, 5)], scores=[0.95, 0.9],
                           crowd=[square(25, 25)]),
                      pair('person', [], [], image='b', crowd=[square(0, 0)])], ['person'])['person']
  assert m['AP'] == pytest.approx(1.0)  # COCOeval: a prediction on a crowd is neither right nor wrong.
  assert m['presence'] == {'TP': 1, 'FP': 0, 'FN': 0, 'TN': 1}  # A crowd alone does not make a pair positive.
  assert m['pmF1'] == pytest.approx(2 * 0.5 * 1 / 1.5)  # SAM 3: crowds dropped, so its prediction is a FP.
  assert m['gIoU'] == 1.0 and m['cIoU'] == 1.0  # Crowd pixels are out of the intersection and the union.
  # Overlapping a crowd: truth columns 5-14, crowd columns 10-19, prediction columns 8-17 (rows 5-14).
  # Outside the crowd, the intersection keeps columns 8-9 (20 px) and the union columns 5-9 (50 px).
  partial = pair_metrics([pair('person', [square(5, 5)], [square(5, 8)], crowd=[square(5, 10)])])
  assert partial['gIoU'] == pytest.approx(20 / 50) and partial['cIoU'] == pytest.approx(20 / 50)


def test_mcc():
  assert mcc(5, 0, 0, 5) == 1.0 and mcc(0, 5, 5, 0) == -1.0 and mcc(3, 0, 0, 0) == 0.0
