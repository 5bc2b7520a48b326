"""Text-prompted segmentation behind a numpy interface.

    segmenter = TextSegmenter(ClipSegFinder(), SamMasker.from_checkpoint('sam_vit_b_01ec64.pth'))
    result = segmenter.segment(image, 'skateboard, cap')  # image: RGB uint8 [H, W, 3]
    for inst in result.instances:
      inst.label, inst.mask, inst.score, inst.box      # str, bool [H, W], float, float32 [4] xyxy
    result.heatmaps                                      # float32 [P, H, W], the finder's view

The finder runs once on all prompts (one batch), SAM encodes the image once,
and every instance of every prompt goes through SAM's decoder in one batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seg_bridge.images import check_rgb_uint8
from seg_bridge.prompts import heatmap_to_regions


@dataclasses.dataclass(frozen=True)
class Instance:
  label: str  # The prompt that found it.
  mask: np.ndarray  # bool [H, W]
  score: float  # SAM's predicted IoU x the finder's peak probability.
  box: np.ndarray  # float32 [4], xyxy pixels, of the mask.


@dataclasses.dataclass(frozen=True)
class Segmentation:
  prompts: list[str]
  instances: list[Instance]
  heatmaps: np.ndarray  # float32 [P, H, W]


def parse_prompts(text: str | list[str]) -> list[str]:
  """'skateboard, cap' or ['skateboard', 'cap'] -> ['skateboard', 'cap']."""
  parts = text.split(',') if isinstance(text, str) else list(text)
  prompts = list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
  if not prompts:
    raise ValueError('the prompt is empty: give one or more words, e.g. --prompt "dog" or "skateboard, cap".')
  return prompts


def mask_box(mask: np.ndarray) -> np.ndarray:
  """Tight xyxy box (pixel edges) of a boolean mask [H, W]; zeros if empty."""
  ys, xs = np.nonzero(mask)
  if ys.size == 0:
    return np.zeros(4, np.float32)
  return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


class TextSegmenter:
  """A finder (text -> heatmaps) and SAM (regions -> masks), composed."""

  def __init__(self, finder, masker, *, threshold: float | None = None, min_peak: float = 0.5):
    self.finder, self.masker = finder, masker
    self.threshold, self.min_peak = threshold, min_peak

  def segment(self, image: np.ndarray, prompts: str | list[str]) -> Segmentation:
    check_rgb_uint8(image)
    prompts = parse_prompts(prompts)
    heatmaps = self.finder.heatmaps(image, prompts)  # [P, H, W]
    found = [(label, region) for label, probs in zip(prompts, heatmaps)
             for region in heatmap_to_regions(probs, threshold=self.threshold, min_peak=self.min_peak)]
    if not found:
      return Segmentation(prompts, [], heatmaps)
    self.masker.set_image(image)
    masks, sam_scores = self.masker.predict(np.stack([r.box for _, r in found]),
                                            np.stack([r.point for _, r in found]),
                                            np.stack([r.mask for _, r in found]))
    instances = [Instance(label, mask, float(s * region.score), mask_box(mask))
                 for (label, region), mask, s in zip(found, masks, sam_scores) if mask.any()]
    instances.sort(key=lambda inst: inst.score, reverse=True)
    return Segmentation(prompts, instances, heatmaps)
