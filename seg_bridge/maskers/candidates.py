"""Choosing among SAM's candidate masks, for SAM and SAM 2 alike.

SAM gives three candidate masks per prompt. The one kept maximises SAM's
predicted IoU times its agreement (IoU) with the finder's region (or, for a
detector's box, with that box), so a small part or a whole-scene mask that
the finder did not point at loses.
"""

from __future__ import annotations

import numpy as np

from seg_bridge.types import ImageEmbedding


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of boolean masks, broadcast over leading dims: [..., H, W] -> [...]."""
  inter = np.logical_and(a, b).sum(axis=(-2, -1))
  union = np.logical_or(a, b).sum(axis=(-2, -1))
  return inter / np.maximum(union, 1)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
  """Tight xyxy boxes (pixel edges) of boolean masks [..., H, W] -> float32
  [..., 4]; zeros for an empty mask."""
  rows, cols = masks.any(axis=-1), masks.any(axis=-2)  # [..., H], [..., W]
  h, w = masks.shape[-2:]
  boxes = np.stack([cols.argmax(-1), rows.argmax(-1), w - cols[..., ::-1].argmax(-1),
                    h - rows[..., ::-1].argmax(-1)], axis=-1).astype(np.float32)
  return np.where(rows.any(-1)[..., None], boxes, np.float32(0))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of xyxy boxes, broadcast over leading dims: [..., 4] -> [...]."""
  lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
  inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
  area = lambda box: np.prod(box[..., 2:] - box[..., :2], axis=-1)
  return inter / np.maximum(area(a) + area(b) - inter, 1e-6)


def select_masks(candidates: np.ndarray, predicted_iou: np.ndarray, boxes: np.ndarray,
                 region_masks: np.ndarray | None = None):
  """candidates [K, C, H, W], predicted_iou [K, C], the prompt boxes [K, 4] and
  the finder's region masks [K, H, W] (or None) -> (masks [K, H, W], scores [K]):
  per region the candidate with the best predicted IoU x agreement with the
  region (mask IoU), or with the box (IoU of the candidate's own box) where the
  finder gave boxes only."""
  if region_masks is not None:
    agreement = mask_iou(candidates, region_masks[:, None])
  else:
    agreement = box_iou(mask_boxes(candidates), np.asarray(boxes, np.float32)[:, None])
  best = np.argmax(predicted_iou * agreement, axis=1)
  index = np.arange(len(best))
  return candidates[index, best], predicted_iou[index, best]


class CandidateMasker:
  """What SamMasker and Sam2Masker share: `predict` on top of their own
  `embed` and `predict_candidates`."""

  def predict(self, embedding: ImageEmbedding, boxes: np.ndarray, points: np.ndarray | None = None,
              region_masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An embedded image, boxes [K, 4] xyxy, interior points [K, 2] xy or
    None, the finder's region masks [K, H, W] or None -> (masks bool
    [K, H, W], the predicted IoU of each [K])."""
    if len(boxes) == 0:
      return np.zeros((0, *embedding.original_size), bool), np.zeros((0,), np.float32)
    candidates, predicted_iou = self.predict_candidates(embedding, np.asarray(boxes, np.float32), points)
    return select_masks(candidates, predicted_iou, boxes, region_masks)
