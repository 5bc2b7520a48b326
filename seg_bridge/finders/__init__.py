"""Finders: text prompts -> where the objects are, as regions for a masker.

    finder = make_finder('clipseg')                 # or 'grounding-dino'
    found = finder.find(image, ['dog', 'cap'])     # image: RGB uint8 [H, W, 3]
    found.regions[0]                               # list[Region] for 'dog', best first
    found.heatmaps                                 # float32 [2, H, W] in [0, 1]

Models load by Hugging Face name (from the HF cache, downloading once when the
network allows) or from a local folder saved with `save_pretrained`. A new
finder is one module with a class like those below, and one line in FINDERS.
"""

from __future__ import annotations

from seg_bridge.finders.clipseg import ClipSegFinder
from seg_bridge.finders.grounding_dino import GroundingDinoFinder

FINDERS = {'clipseg': ClipSegFinder, 'grounding-dino': GroundingDinoFinder}


def make_finder(name: str = 'clipseg', model: str | None = None, device: str | None = None, **options):
  """A finder by name; model is a HF name or local folder (default: the
  finder's standard checkpoint); options go to its constructor."""
  if name not in FINDERS:
    raise ValueError(f'unknown finder {name!r}; choose one of {", ".join(FINDERS)}.')
  cls = FINDERS[name]
  return cls(model or cls.default_model, device, **options)
