"""The SAM stage: regions (box + interior point) -> masks, numpy in and out.

The image is encoded once (`set_image`); every region of every prompt then
goes through SAM's prompt encoder and mask decoder as one batch. Of SAM's
three candidate masks per region, the one kept maximises SAM's predicted IoU
times its agreement (IoU) with the finder's region (or, for a detector's box,
with that box), so a small part or a whole-scene mask that the finder did not
point at loses.

    masker = SamMasker.from_checkpoint('sam_vit_b_01ec64.pth', 'vit_b')
    masker.set_image(image)                      # uint8 [H, W, 3] RGB
    masks, scores = masker.predict(boxes, points, region_masks)
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from seg_bridge.images import check_rgb_uint8
from seg_bridge.loading import ModelNotFoundError, pick_device, reason

SAM_CHECKPOINTS = {
    'vit_b': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth',
    'vit_l': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth',
    'vit_h': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth',
}


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


class Masker:
  """What SamMasker and Sam2Masker share: `predict` on top of their own
  `set_image`, `predict_candidates` and `original_size` ((H, W) of the image)."""

  original_size: tuple[int, int]

  def predict(self, boxes: np.ndarray, points: np.ndarray | None = None,
              region_masks: np.ndarray | None = None):
    """boxes [K, 4] xyxy, interior points [K, 2] xy or None, the finder's
    region masks [K, H, W] or None -> (masks bool [K, H, W], SAM's predicted
    IoU of each [K])."""
    if len(boxes) == 0:
      return np.zeros((0, *self.original_size), bool), np.zeros((0,), np.float32)
    candidates, predicted_iou = self.predict_candidates(np.asarray(boxes), points)
    return select_masks(candidates, predicted_iou, boxes, region_masks)


class SamMasker(Masker):
  """segment-anything's SAM behind a numpy interface, batched over prompts."""

  def __init__(self, sam, device: str | None = None):
    from segment_anything import SamPredictor
    self.device = pick_device(device)
    self.predictor = SamPredictor(sam.to(self.device).eval())

  @classmethod
  def from_checkpoint(cls, path: str, model_type: str = 'vit_b', device: str | None = None) -> SamMasker:
    """SAM from an official .pth file (loaded with weights_only, on the CPU first)."""
    import torch
    from segment_anything import sam_model_registry
    if model_type not in SAM_CHECKPOINTS:
      raise ValueError(f'unknown SAM model type {model_type!r}; choose one of {", ".join(SAM_CHECKPOINTS)}.')
    if not os.path.isfile(path):
      raise ModelNotFoundError(f'SAM checkpoint {path!r} not found; download {SAM_CHECKPOINTS[model_type]} '
                               f'and pass its path.')
    sam = sam_model_registry[model_type](checkpoint=None)
    try:
      with warnings.catch_warnings():  # torch's notes on an odd pickle: the error below says what matters.
        warnings.simplefilter('ignore')
        state = torch.load(path, map_location='cpu', weights_only=True)  # Never runs code a pickle may hold.
    except Exception:  # Empty, truncated, not PyTorch, or a pickle of more than tensors: torch's advice does not apply.
      raise ModelNotFoundError(f'{path!r} is not a SAM {model_type} checkpoint: not a readable PyTorch weights file '
                               f'(empty, truncated, or holding more than tensors); download '
                               f'{SAM_CHECKPOINTS[model_type]} again.') from None
    try:
      sam.load_state_dict(state)
    except Exception as e:
      raise ModelNotFoundError(f'{path!r} is not a SAM {model_type} checkpoint ({reason(e)}); check --sam-type, or '
                               f'download {SAM_CHECKPOINTS[model_type]}.') from None
    return cls(sam, device)

  def set_image(self, image: np.ndarray) -> None:
    """Encodes an RGB uint8 [H, W, 3] image once for all later predictions."""
    check_rgb_uint8(image)
    self.predictor.set_image(image)

  @property
  def original_size(self) -> tuple[int, int]:
    return self.predictor.original_size

  def predict_candidates(self, boxes: np.ndarray, points: np.ndarray | None = None):
    """boxes [K, 4] xyxy and interior points [K, 2] xy (pixels of the image)
    -> (candidate masks bool [K, 3, H, W], predicted IoU [K, 3])."""
    import torch
    size = self.predictor.original_size
    with torch.inference_mode():
      box_t = self.predictor.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float32), size)
      coords = labels = None
      if points is not None:
        coords = self.predictor.transform.apply_coords_torch(
            torch.as_tensor(points, dtype=torch.float32)[:, None, :], size)
        coords = coords.to(self.device)
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=self.device)
      masks, iou, _ = self.predictor.predict_torch(coords, labels, box_t.to(self.device), multimask_output=True)
    return masks.cpu().numpy(), iou.float().cpu().numpy()
