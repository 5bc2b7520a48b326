"""Maskers: regions (boxes, points, the finder's masks) -> masks.

    masker = make_masker('sam', 'sam_vit_b_01ec64.pth', model_type='vit_b')   # or 'sam2', an HF name or folder
    embedding = masker.embed(image)                        # the image, encoded once
    masks, scores = masker.predict(embedding, boxes, points, region_masks)

A new masker is one module with a class that has `default_model`, a `load`
classmethod, `embed` and `predict`, and one line in MASKERS.
"""

from __future__ import annotations

from seg_bridge.maskers.sam import SamMasker
from seg_bridge.maskers.sam2 import Sam2Masker

MASKERS = {'sam': SamMasker, 'sam2': Sam2Masker}


def make_masker(name: str = 'sam', model: str | None = None, device: str | None = None, **options):
  """A masker by name; model is its weights (a .pth file for SAM, a HF name or
  folder for SAM 2; default: its standard checkpoint)."""
  if name not in MASKERS:
    raise ValueError(f'unknown masker {name!r}; choose one of {", ".join(MASKERS)}.')
  cls = MASKERS[name]
  return cls.load(model or cls.default_model, device, **options)
