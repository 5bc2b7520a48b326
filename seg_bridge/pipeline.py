"""Text-prompted segmentation behind a numpy interface: a finder and a masker, composed.

    segmenter = TextSegmenter(make_finder('clipseg'), make_masker('sam'))
    result = segmenter.segment(image, 'skateboard, cap')  # image: RGB uint8 [H, W, 3]
    for inst in result.instances:
      inst.label, inst.mask, inst.score, inst.box      # str, bool [H, W], float, float32 [4] xyxy
    result.heatmaps                                      # float32 [P, H, W], the finder's view

The finder runs once on all prompts (one batch), the masker encodes the image
once, and every instance of every prompt goes through its decoder in one
batch. `segment` keeps no state between calls.
"""

from __future__ import annotations

import numpy as np

from vit_jax.images import check_rgb_uint8
from seg_bridge.maskers.candidates import mask_boxes
from seg_bridge.types import Finder, Found, ImageEmbedding, Instance, Masker, Segmentation, parse_prompts


class TextSegmenter:
  """A finder (text -> regions) and a masker (regions -> masks)."""

  def __init__(self, finder: Finder, masker: Masker):
    self.finder, self.masker = finder, masker

  def check_prompts(self, prompts: list[str]) -> None:
    self.finder.check_prompts(prompts)

  def embed(self, image: np.ndarray) -> ImageEmbedding:
    """The image as the masker encodes it, to pass to `segment` again (a sweep of thresholds)."""
    check_rgb_uint8(image)
    return self.masker.embed(image)

  def segment(self, image: np.ndarray, prompts: str | list[str], embedding: ImageEmbedding | None = None,
              found: Found | None = None) -> Segmentation:
    """`embedding` (from `embed`) and `found` (the finder's output for these
    prompts), where given, are used instead of computing them again."""
    check_rgb_uint8(image)
    prompts = parse_prompts(prompts)
    found = found or self.finder.find(image, prompts)
    labels = [label for label, regions in zip(prompts, found.regions) for _ in regions]
    regions = [region for regions in found.regions for region in regions]
    if not regions:
      return Segmentation(prompts, [], found.heatmaps)

    def stacked(field):  # [K, ...], or None where the finder gave none (boxes only).
      values = [getattr(r, field) for r in regions]
      return None if any(v is None for v in values) else np.stack(values)

    embedding = embedding or self.masker.embed(image)
    masks, masker_scores = self.masker.predict(embedding, stacked('box'), stacked('point'), stacked('mask'))
    instances = [Instance(label, mask, float(s * region.score), mask_boxes(mask), region.score)
                 for label, region, mask, s in zip(labels, regions, masks, masker_scores) if mask.any()]
    instances.sort(key=lambda inst: inst.score, reverse=True)
    return Segmentation(prompts, instances, found.heatmaps)
