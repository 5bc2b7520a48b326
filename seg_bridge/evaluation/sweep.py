"""A configuration's instances on each image once, for a whole grid of thresholds.

--min-score only filters: every finder (CLIPSeg's regions, Grounding DINO's
boxes after NMS, SAM 3's instances) keeps what scores at least the floor,
then the best --max-per-prompt of those, so the instances at a higher
min-score are those at the lowest whose finder confidence reaches it. An
image is therefore segmented once, at the grid's lowest min-score, and each
instance keeps its finder confidence (Instance.confidence); a grid point is a
filter over them. What reruns per grid point:

  CLIPSeg + SAM / SAM 2: per --threshold value, the heatmaps' regions and the
      masker's decoder (the heatmaps and the masker's image encoding are
      computed once); per --min-score value, nothing but the filter.
  Grounding DINO + SAM / SAM 2, SAM 3: nothing but the filter.

Each image's candidates are written atomically to CACHE/NAME.json as soon as
they are done, so a killed evaluation resumes where it stopped, and a job
runs here or in Ray actors alike (seg_bridge.engines).

    job = SweepJob(options, prompts=('dog',), thresholds=(None, 0.4), cache='eval/cache/3f2a...')
    work = job.worker(job.load(), job.cache); done = work(Item(path, source, name))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping

from seg_bridge.build import Options, settings_of
from seg_bridge.jobs import WRITTEN, Done, Item, load_segmenter
from vit_jax.files import atomic_write

ADAPTIVE = 'adaptive'  # CLIPSeg's own threshold (Otsu's per heatmap), as a grid point's name.
AS_GIVEN = 'as given'  # The one point of a run that sweeps nothing: the segmenter's settings as they are.


def threshold_key(threshold: float | None) -> str:
  return ADAPTIVE if threshold is None else f'{threshold:g}'


def cache_key(options: Options, prompts: tuple[str, ...], thresholds: tuple | None) -> str:
  """What the candidates depend on, as a folder name."""
  settings = {'settings': settings_of(options), 'prompts': list(prompts),
              'thresholds': None if thresholds is None else [threshold_key(t) for t in thresholds]}
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def candidates(segmenter, image, prompts: list[str], thresholds: tuple | None) -> dict[str, list]:
  """{threshold key: instances} of one image at the segmenter's own min-score;
  thresholds None: the segmenter's own settings only ({AS_GIVEN: instances})."""
  if thresholds is None or thresholds == (None,):  # Not CLIPSeg's thresholds: min-score alone is swept.
    return {AS_GIVEN if thresholds is None else ADAPTIVE: segmenter.segment(image, prompts).instances}
  finder = segmenter.finder  # CLIPSeg: its heatmaps and the masker's encoding once, regions per threshold.
  heatmaps, embedding = finder.heatmaps(image, prompts), segmenter.embed(image)
  return {threshold_key(t): segmenter.segment(image, prompts, embedding,
                                              found=finder.regions(heatmaps, prompts, threshold=t)).instances
          for t in thresholds}


def record_of(source: str, seconds: float, found: dict[str, list]) -> dict:
  """Candidates as JSON: per threshold, each instance's label, confidence, score and RLE mask."""
  from seg_bridge.outputs import coco_rle
  return {'source': source, 'seconds': round(seconds, 4),
          'at': {key: [{'label': i.label, 'confidence': i.confidence, 'score': i.score, 'rle': coco_rle(i.mask)}
                       for i in instances] for key, instances in found.items()}}  # Unrounded: filters compare them.


def read_record(path: str, source: str) -> dict | None:
  """A finished image's candidates, or None (not done, or damaged: done again)."""
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  return record if isinstance(record, dict) and record.get('source') == source and isinstance(
      record.get('at'), dict) else None


def kept(instances: list[dict], prompt: str, min_score: float | None) -> list[dict]:
  """The candidates of `prompt` a grid point keeps, best first."""
  chosen = [i for i in instances if i['label'] == prompt and (min_score is None or i['confidence'] >= min_score)]
  return sorted(chosen, key=lambda i: i['score'], reverse=True)


def at_point(record: dict, prompt: str, threshold: str | Mapping[str, str], min_score) -> list[dict]:
  """A prompt's instances at a grid point; either setting may be a mapping prompt -> value (a calibration)."""
  if isinstance(threshold, Mapping):
    threshold = threshold[prompt]
  if isinstance(min_score, Mapping):
    min_score = min_score[prompt]
  return kept(record['at'].get(threshold, []), prompt, min_score)


@dataclasses.dataclass(frozen=True)
class SweepJob:
  """One configuration's candidates for each image, into `cache` (picklable: Ray ships it)."""

  options: Options  # At the grid's lowest min-score.
  prompts: tuple[str, ...]
  thresholds: tuple | None  # CLIPSeg's --threshold values (None: adaptive); (None,) for the others; None: no sweep.
  cache: str

  def load(self):
    return load_segmenter(self.options, self.prompts)

  def open(self) -> Callable[[Item], Done]:
    return self.worker(self.load(), self.cache)

  def worker(self, segmenter, cache: str) -> Callable[[Item], Done]:
    from seg_bridge.jobs import failure
    from vit_jax.images import ImageError, load_image

    def work(item: Item) -> Done:
      try:
        image = load_image(item.path)
        started = time.perf_counter()
        found = candidates(segmenter, image, list(self.prompts), self.thresholds)
        record = record_of(item.source, time.perf_counter() - started, found)
        atomic_write(os.path.join(cache, f'{item.name}.json'), json.dumps(record).encode())
      except Exception as e:  # One image fails alone.
        return failure(item, cache, e, said=(ImageError,))
      count = max(len(v) for v in record['at'].values())
      return Done(item.path, item.name, WRITTEN, f'{item.path!r}: {count} candidates')
    return work
