"""One builder from options to a segmenter, for segment.py, the benchmarks,
the video command and the demo alike.

    segmenter, settings = build(Options(finder='grounding-dino', masker='sam2'))
    segmenter.segment(image, 'dog, ball')
    segmenter, settings = build(Options(finder='sam3'))   # finds and outlines itself

`settings` is what makes a result (finder, masker, their weights, the
thresholds): a run's outputs record it, so that a rerun recognises what an
earlier run with the same settings already did.
"""

from __future__ import annotations

import dataclasses
import os

from seg_bridge.finders import FINDERS, make_finder
from seg_bridge.maskers import MASKERS, make_masker
from seg_bridge.maskers.sam import official_path
from seg_bridge.pipeline import TextSegmenter
from seg_bridge.types import Segmenter
from seg_bridge.segmenters import SEGMENTERS

FINDER_CHOICES = (*FINDERS, *SEGMENTERS)  # What --finder accepts.


@dataclasses.dataclass(frozen=True)
class Options:
  finder: str = 'clipseg'  # A name of FINDERS, or of SEGMENTERS (which need no masker).
  finder_model: str | None = None  # HF name or folder; None: the finder's standard checkpoint.
  masker: str = 'sam'  # A name of MASKERS.
  masker_model: str | None = None  # SAM: a .pth file; SAM 2: HF name or folder; None: the standard one (SAM's downloaded once).
  sam_type: str = 'vit_b'  # SAM only: vit_b, vit_l or vit_h.
  min_score: float | dict | None = None  # The finder's confidence a match needs (None: the finder's default;
  # a dict: per prompt, '*' for the rest, as a calibration's settings file gives).
  threshold: float | dict | None = None  # CLIPSeg only: a fixed heatmap threshold (None: adaptive; dict: per prompt).
  max_per_prompt: int = 16  # At most this many instances per prompt, the most confident.
  device: str | None = None  # cuda, mps or cpu (None: the best available).


def check(options: Options) -> None:
  """ValueError, before any model loads, for names or combinations that cannot work."""
  if options.finder not in FINDER_CHOICES:
    raise ValueError(f'unknown finder {options.finder!r}; choose one of {", ".join(FINDER_CHOICES)}.')
  if options.finder in SEGMENTERS and (options.masker != Options.masker or options.masker_model is not None):
    raise ValueError(f'--finder {options.finder} outlines the objects itself; leave out the SAM options.')
  if options.masker not in MASKERS:
    raise ValueError(f'unknown masker {options.masker!r}; choose one of {", ".join(MASKERS)}.')
  if not (isinstance(options.max_per_prompt, int) and options.max_per_prompt >= 1):
    raise ValueError(f'--max-per-prompt {options.max_per_prompt!r}: give a whole number >= 1.')
  if options.threshold is not None and options.finder != 'clipseg':
    raise ValueError('--threshold applies to CLIPSeg heatmaps only; use --min-score for box scores.')


def _finder_options(options: Options) -> dict:
  finder_options = {k: v for k, v in (('min_score', options.min_score), ('threshold', options.threshold))
                    if v is not None}
  if options.max_per_prompt != Options.max_per_prompt:  # Only where set: earlier runs' settings stay valid.
    finder_options['max_per_prompt'] = options.max_per_prompt
  return finder_options


def settings_of(options: Options) -> dict:
  """What makes a result (finder, masker, their weights, the thresholds),
  known before any model loads: a driver that loads none can tell done work."""
  check(options)
  if options.finder in SEGMENTERS:
    return {'finder': options.finder, 'finder_model': options.finder_model or SEGMENTERS[options.finder].default_model,
            **_finder_options(options)}
  if options.masker == 'sam':
    masker = f'SAM {options.sam_type} {os.path.realpath(options.masker_model or official_path(options.sam_type))}'
  else:
    masker = f'SAM 2 {options.masker_model or MASKERS[options.masker].default_model}'
  return {'finder': options.finder, 'finder_model': options.finder_model or FINDERS[options.finder].default_model,
          **_finder_options(options), 'masker': masker}


def build(options: Options) -> tuple[Segmenter, dict]:
  """The segmenter the options name (models loaded), and its settings."""
  settings = settings_of(options)
  if options.finder in SEGMENTERS:
    cls = SEGMENTERS[options.finder]
    return cls.load(options.finder_model or cls.default_model, options.device, **_finder_options(options)), settings
  finder = make_finder(options.finder, options.finder_model, options.device, **_finder_options(options))
  masker_options = {'model_type': options.sam_type} if options.masker == 'sam' else {}
  masker = make_masker(options.masker, options.masker_model, options.device, **masker_options)
  return TextSegmenter(finder, masker), settings
