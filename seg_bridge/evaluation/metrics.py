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


def pair_iou(pair: Pair, overlap: tuple[int, int] | None = None) -> float:
  """The pair's IoU of union masks (from its union_overlap, where known); 1 where neither side has a pixel."""
  both, union = overlap or union_overlap(pair)
  return both / union if union else 1.0


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


def pair_metrics(pairs: list[Pair]) -> dict:
  """gIoU, cIoU, presence and cgF1 over `pairs` (see the module docstring)."""
  overlaps = [union_overlap(p) for p in pairs]
  ious = [pair_iou(p, overlap) for p, overlap in zip(pairs, overlaps)]
  present = np.array([bool(p.truth) for p in pairs], bool)
  said = np.array([bool(p.predicted) for p in pairs], bool)
  tp, fp = int((present & said).sum()), int((~present & said).sum())
  fn, tn = int((present & ~said).sum()), int((~present & ~said).sum())
  hits = np.zeros(len(IOU_THRESHOLDS))
  false_pos = np.zeros(len(IOU_THRESHOLDS))
  false_neg = np.zeros(len(IOU_THRESHOLDS))
  for pair in pairs:
    if not pair.truth:
      continue  # pmF1 counts only pairs with a true instance; the rest reach cgF1 through IL_MCC.
    matched = (matches(pair)[:, None] >= IOU_THRESHOLDS[None, :]).sum(0)
    hits += matched
    false_pos += len(pair.predicted) - matched
    false_neg += len(pair.truth) - matched
  precision = np.divide(hits, hits + false_pos, out=np.zeros_like(hits), where=hits + false_pos > 0)
  recall = np.divide(hits, hits + false_neg, out=np.zeros_like(hits), where=hits + false_neg > 0)
  f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits), where=precision + recall > 0)
  presence_mcc = mcc(tp, fp, fn, tn)
  return {
      'pairs': len(pairs), 'gIoU': float(np.mean(ious)) if ious else None,
      'cIoU': _ratio(sum(b for b, _ in overlaps), sum(u for _, u in overlaps)),
      'precision': _ratio(tp, tp + fp), 'recall': _ratio(tp, tp + fn), 'MCC': presence_mcc,
      'presence': {'TP': tp, 'FP': fp, 'FN': fn, 'TN': tn},
      'pmF1': float(f1.mean()), 'cgF1': 100.0 * float(f1.mean()) * presence_mcc,
  }


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
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress.
    gt = COCO()
    gt.dataset = {'images': [{'id': i, 'height': sizes[name][0], 'width': sizes[name][1]}
                             for name, i in image_ids.items()],
                  'categories': [{'id': i, 'name': p} for p, i in category_ids.items()], 'annotations': truth}
    gt.createIndex()
    dt = COCO()
    dt.dataset = {'images': gt.dataset['images'], 'categories': gt.dataset['categories'], 'annotations': found}
    dt.createIndex()
    results = {}
    for name, ids in [('*', list(category_ids.values()))] + [(p, [i]) for p, i in category_ids.items()]:
      if not any(a['category_id'] in ids and not a['iscrowd'] for a in truth):
        results[name] = {'AP': None, 'AP50': None, 'AP75': None, 'pr': None}
        continue
      evaluator = COCOeval(gt, dt, 'segm')
      evaluator.params.catIds, evaluator.params.imgIds = ids, list(image_ids.values())
      evaluator.evaluate()
      evaluator.accumulate()
      evaluator.summarize()
      pr = evaluator.eval['precision'][0, :, :, 0, -1]  # [recall 101, categories] at IoU 0.5, all areas, 100 dets.
      results[name] = {'AP': _defined(evaluator.stats[0]), 'AP50': _defined(evaluator.stats[1]),
                       'AP75': _defined(evaluator.stats[2]),
                       'pr': np.where(pr >= 0, pr, 0).mean(axis=1).round(4).tolist()}
  return results


def _defined(value: float) -> float | None:
  return None if value < 0 else float(value)


def evaluate_pairs(pairs: list[Pair], prompts: list[str]) -> dict:
  """Every metric, overall ('*') and per prompt: {'*': {...}, prompt: {...}}."""
  ap = coco_ap(pairs, prompts)
  results = {}
  for name in ['*', *prompts]:
    chosen = pairs if name == '*' else [p for p in pairs if p.prompt == name]
    results[name] = {**pair_metrics(chosen), **{k: ap[name][k] for k in ('AP', 'AP50', 'AP75')},
                     'pr_iou50': ap[name]['pr']}
  return results
