"""Segmentation metrics over (image, prompt) pairs, each as its source defines it.

A pair is one image and one prompt: the true instances of the prompt in the
image (possibly none) and the predicted ones (possibly none), all as COCO RLE.

  gIoU, cIoU     referring segmentation (GRES, Liu et al. CVPR 2023, §5.1):
                 the IoU of the union of the predicted masks with the union of
                 the true ones; gIoU is its mean over pairs (a pair with
                 neither counts 1, one with only one side 0), cIoU is the
                 summed intersections over the summed unions.
  AP, AP50, AP75 COCO mask average precision (pycocotools' COCOeval, iouType
                 'segm', maxDets 100), per prompt and averaged over prompts.
  presence       per pair, whether the prompt is there (a true instance) and
                 whether something was predicted: precision, recall and
                 Matthews' correlation coefficient (MCC).
  cgF1           SAM 3's classification-gated F1 (Carion et al. 2025, "SAM 3:
                 Segment Anything with Concepts", §6 and its evaluator
                 sam3/eval/cgf1_eval.py): 100 x pmF1 x IL_MCC. IL_MCC is the
                 presence MCC above; pmF1, the positive micro F1, matches the
                 predicted and true instances of each pair with a true
                 instance one to one (Hungarian, on mask IoU) and, at each IoU
                 threshold 0.50:0.05:0.95, counts TP (matches at or above
                 it), FP and FN over those pairs, takes F1 = 2PR/(P+R), and
                 averages over the thresholds. Here 0/0 counts 0 where the
                 evaluator adds 1e-4 to denominators (a difference below 1e-3).

Crowd regions (COCO's iscrowd 1: "a crowd of people", not one person) are
ignored, each metric as its source does: COCOeval matches a prediction to a
crowd region without counting it either way; SAM 3's evaluator drops them,
so they neither make a pair positive nor match a prediction (cgF1, presence);
gIoU and cIoU leave their pixels out of both intersection and union.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's, and cgF1's.


@dataclasses.dataclass(frozen=True)
class Pair:
  image: str
  prompt: str
  size: tuple[int, int]  # (H, W)
  truth: list[dict]  # COCO RLE of each true instance.
  predicted: list[dict]  # COCO RLE of each predicted instance, best first.
  scores: list[float]  # Of the predicted ones.
  crowd: list[dict] = dataclasses.field(default_factory=list)  # COCO RLE of each crowd region: ignored.


def _union(masks: list[dict], size: tuple[int, int]) -> dict:
  from pycocotools import mask as mask_utils
  if not masks:
    return mask_utils.encode(np.zeros((*size, 1), np.uint8, order='F'))[0]
  return mask_utils.merge(masks) if len(masks) > 1 else masks[0]


def union_overlap(pair: Pair) -> tuple[int, int]:
  """(intersection, union) in pixels of the pair's union masks, crowd pixels left out."""
  from pycocotools import mask as mask_utils
  predicted, truth = _union(pair.predicted, pair.size), _union(pair.truth, pair.size)
  crowd = _union(pair.crowd, pair.size) if pair.crowd else None

  def counted(rle: dict) -> int:  # Its pixels outside the crowd regions.
    inside = int(mask_utils.area(mask_utils.merge([rle, crowd], intersect=True))) if crowd else 0
    return int(mask_utils.area(rle)) - inside
  return (counted(mask_utils.merge([predicted, truth], intersect=True)),
          counted(mask_utils.merge([predicted, truth])))


def _iou(overlap: tuple[int, int]) -> float:
  both, union = overlap
  return both / union if union else 1.0


def pair_iou(pair: Pair) -> float:
  """The pair's IoU of union masks; 1 where neither side has a pixel."""
  return _iou(union_overlap(pair))


def _ratio(a: float, b: float) -> float | None:
  return a / b if b else None


def mcc(tp: int, fp: int, fn: int, tn: int) -> float:
  """Matthews' correlation coefficient; 0 where a margin is empty."""
  denominator = float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
  return (tp * tn - fp * fn) / denominator ** 0.5 if denominator else 0.0


def matches(pair: Pair) -> np.ndarray:
  """The IoU of each one-to-one match of predicted and true instances (Hungarian, on mask IoU)."""
  from pycocotools import mask as mask_utils
  from scipy.optimize import linear_sum_assignment
  if not pair.predicted or not pair.truth:
    return np.zeros(0)
  ious = np.asarray(mask_utils.iou(pair.predicted, pair.truth, [0] * len(pair.truth))).reshape(
      len(pair.predicted), len(pair.truth))
  rows, cols = linear_sum_assignment(-ious)
  return ious[rows, cols]


@dataclasses.dataclass(frozen=True)
class _PairCounts:
  """One pair's share of gIoU, cIoU, presence and pmF1, computed once for '*' and its prompt."""
  overlap: tuple[int, int]  # union_overlap
  present: bool  # A true instance.
  said: bool  # A predicted one.
  predicted: int
  truth: int
  hits: np.ndarray  # int [thresholds]: matches at or above each IoU threshold.


def _pair_counts(pair: Pair) -> _PairCounts:
  return _PairCounts(union_overlap(pair), bool(pair.truth), bool(pair.predicted), len(pair.predicted),
                     len(pair.truth), (matches(pair)[:, None] >= IOU_THRESHOLDS[None, :]).sum(0))


def _summary(counts: list[_PairCounts]) -> dict:
  present = np.array([c.present for c in counts], bool)
  said = np.array([c.said for c in counts], bool)
  tp, fp = int((present & said).sum()), int((~present & said).sum())
  fn, tn = int((present & ~said).sum()), int((~present & ~said).sum())
  hits = np.zeros(len(IOU_THRESHOLDS))
  false_pos = np.zeros(len(IOU_THRESHOLDS))
  false_neg = np.zeros(len(IOU_THRESHOLDS))
  for c in counts:
    if not c.present:
      continue  # pmF1 counts only pairs with a true instance; the rest reach cgF1 through IL_MCC.
    hits += c.hits
    false_pos += c.predicted - c.hits
    false_neg += c.truth - c.hits
  precision = np.divide(hits, hits + false_pos, out=np.zeros_like(hits), where=hits + false_pos > 0)
  recall = np.divide(hits, hits + false_neg, out=np.zeros_like(hits), where=hits + false_neg > 0)
  f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits), where=precision + recall > 0)
  presence_mcc = mcc(tp, fp, fn, tn)
  return {
      'pairs': len(counts), 'gIoU': float(np.mean([_iou(c.overlap) for c in counts])) if counts else None,
      'cIoU': _ratio(sum(c.overlap[0] for c in counts), sum(c.overlap[1] for c in counts)),
      'precision': _ratio(tp, tp + fp), 'recall': _ratio(tp, tp + fn), 'MCC': presence_mcc,
      'presence': {'TP': tp, 'FP': fp, 'FN': fn, 'TN': tn},
      'pmF1': float(f1.mean()), 'cgF1': 100.0 * float(f1.mean()) * presence_mcc,
  }


def pair_metrics(pairs: list[Pair]) -> dict:
  """gIoU, cIoU, presence and cgF1 over `pairs` (see the module docstring)."""
  return _summary([_pair_counts(p) for p in pairs])


def coco_ap(pairs: list[Pair], prompts: list[str]) -> dict:
  """COCO mask AP, AP50 and AP75 (pycocotools), per prompt and over all
  prompts with a true instance (None where a prompt has none); and each
  prompt's precision at recall 0, 0.01 ... 1 at IoU 0.5 (for the PR plot)."""
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval
  image_ids = {image: k + 1 for k, image in enumerate(dict.fromkeys(p.image for p in pairs))}
  category_ids = {prompt: k + 1 for k, prompt in enumerate(prompts)}
  sizes = {p.image: p.size for p in pairs}
  truth, found = [], []
  for pair in pairs:
    for rle, crowd in [(r, 0) for r in pair.truth] + [(r, 1) for r in pair.crowd]:
      truth.append({'id': len(truth) + 1, 'image_id': image_ids[pair.image], 'category_id': category_ids[pair.prompt],
                    'segmentation': rle, 'area': 1.0, 'iscrowd': crowd})  # COCO's area ranges: all of them count here.
    for rle, score in zip(pair.predicted, pair.scores):
      found.append({'id': len(found) + 1, 'image_id': image_ids[pair.image], 'category_id': category_ids[pair.prompt],
                    'segmentation': rle, 'area': 1.0, 'score': float(score), 'iscrowd': 0})
  with_truth = {a['category_id'] for a in truth if not a['iscrowd']}
  results = {name: {'AP': None, 'AP50': None, 'AP75': None, 'pr': None} for name in ['*', *prompts]}
  if not with_truth:
    return results
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress.
    gt = COCO()
    gt.dataset = {'images': [{'id': i, 'height': sizes[name][0], 'width': sizes[name][1]}
                             for name, i in image_ids.items()],
                  'categories': [{'id': i, 'name': p} for p, i in category_ids.items()], 'annotations': truth}
    gt.createIndex()
    dt = COCO()
    dt.dataset = {'images': gt.dataset['images'], 'categories': gt.dataset['categories'], 'annotations': found}
    dt.createIndex()
    # One evaluation: COCOeval scores each category on its own, so a prompt's AP is its slice of the
    # precision table and '*' the whole table, as summarize() averages it.
    evaluator = COCOeval(gt, dt, 'segm')
    evaluator.params.imgIds = list(image_ids.values())
    evaluator.evaluate()
    evaluator.accumulate()
  precision = evaluator.eval['precision'][:, :, :, 0, -1]  # [IoU 10, recall 101, categories]: all areas, 100 dets.
  at_75 = np.where(evaluator.params.iouThrs == 0.75)[0]
  for name, k in [('*', slice(None))] + [(p, slice(i - 1, i)) for p, i in category_ids.items() if i in with_truth]:
    table = precision[:, :, k]  # Categories in COCOeval's order: their ids, 1 ... K.
    results[name] = {'AP': _mean_defined(table), 'AP50': _mean_defined(table[:1]), 'AP75': _mean_defined(table[at_75]),
                     'pr': np.where(table[0] >= 0, table[0], 0).mean(axis=1).round(4).tolist()}
  return results


def _mean_defined(table: np.ndarray) -> float | None:
  """The mean of a COCOeval precision table's defined entries (-1: undefined), as its summarize() takes it."""
  defined = table[table > -1]
  return float(np.mean(defined)) if defined.size else None


def evaluate_pairs(pairs: list[Pair], prompts: list[str]) -> dict:
  """Every metric, overall ('*') and per prompt: {'*': {...}, prompt: {...}}."""
  ap = coco_ap(pairs, prompts)
  counts = [_pair_counts(p) for p in pairs]
  results = {}
  for name in ['*', *prompts]:
    chosen = counts if name == '*' else [c for c, p in zip(counts, pairs) if p.prompt == name]
    results[name] = {**_summary(chosen), **{k: ap[name][k] for k in ('AP', 'AP50', 'AP75')},
                     'pr_iou50': ap[name]['pr']}
  return results
