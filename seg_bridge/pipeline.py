"""Text-prompted segmentation behind a numpy interface.

    segmenter = TextSegmenter(make_finder('clipseg'), SamMasker.from_checkpoint('sam_vit_b_01ec64.pth'))
    result = segmenter.segment(image, 'skateboard, cap')  # image: RGB uint8 [H, W, 3]
    for inst in result.instances:
      inst.label, inst.mask, inst.score, inst.box      # str, bool [H, W], float, float32 [4] xyxy
    result.heatmaps                                      # float32 [P, H, W], the finder's view

The finder runs once on all prompts (one batch), SAM encodes the image once,
and every instance of every prompt goes through SAM's decoder in one batch.
A finder is anything with `find(image, prompts) -> seg_bridge.finders.Found`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seg_bridge.images import check_rgb_uint8
from seg_bridge.sam import mask_boxes


@dataclasses.dataclass(frozen=True)
class Instance:
  label: str  # The prompt that found it.
  mask: np.ndarray  # bool [H, W]
  score: float  # SAM's predicted IoU x the finder's confidence.
  box: np.ndarray  # float32 [4], xyxy pixels, of the mask.


@dataclasses.dataclass(frozen=True)
class Segmentation:
  prompts: list[str]
  instances: list[Instance]
  heatmaps: np.ndarray  # float32 [P, H, W]


class PromptError(ValueError):
  """The prompts cannot be used: empty, or too long or unreadable for the finder."""


def parse_prompts(text: str | list[str]) -> list[str]:
  """'skateboard, cap' or ['skateboard', 'cap'] -> ['skateboard', 'cap']."""
  parts = text.split(',') if isinstance(text, str) else list(text)
  prompts = list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
  if not prompts:
    raise PromptError('the prompt is empty: give one or more words, e.g. --prompt "dog" or "skateboard, cap".')
  return prompts


class TextSegmenter:
  """A finder (text -> regions) and SAM (regions -> masks), composed."""

  def __init__(self, finder, masker):
    self.finder, self.masker = finder, masker

  def segment(self, image: np.ndarray, prompts: str | list[str]) -> Segmentation:
    check_rgb_uint8(image)
    prompts = parse_prompts(prompts)
    found = self.finder.find(image, prompts)
    labels = [label for label, regions in zip(prompts, found.regions) for _ in regions]
    regions = [region for regions in found.regions for region in regions]
    if not regions:
      return Segmentation(prompts, [], found.heatmaps)

    def stacked(field):  # [K, ...], or None where the finder gave none (boxes only).
      values = [getattr(r, field) for r in regions]
      return None if any(v is None for v in values) else np.stack(values)

    self.masker.set_image(image)
    masks, sam_scores = self.masker.predict(stacked('box'), stacked('point'), stacked('mask'))
    instances = [Instance(label, mask, float(s * region.score), mask_boxes(mask))
                 for label, region, mask, s in zip(labels, regions, masks, sam_scores) if mask.any()]
    instances.sort(key=lambda inst: inst.score, reverse=True)
    return Segmentation(prompts, instances, found.heatmaps)
