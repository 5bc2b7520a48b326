"""What segment.py writes: one folder per image, complete or absent.

    OUT/NAME/overlay.png     the image with masks, boxes and labels drawn
    OUT/NAME/mask_K.png      one black/white PNG per instance, K = 0, 1, ...
    OUT/NAME/result.json     source, settings, prompts, and per instance:
                             label, score, box (xyxy pixels), COCO RLE mask

An image's files are written into OUT/.partial/ and the folder is moved into
place in one rename, so a reader, or a run killed at any moment, sees the
whole set or none of it. NAME is the image's file stem, made unique; a folder
holding another image's results (or anything this program did not write) is
never touched. One process at a time writes to OUT (a lock file), or several
with disjoint shards of the images (segment.py --shard I/N: each holds OUT's
lock shared and its shard's own lock, and stages in OUT/.partial-I-of-N/);
opening OUT finishes or removes what a killed run left there. A Ray run's
actors write through OutputFolder.worker, under the driver's lock.
"""

from __future__ import annotations

import colorsys
import json
import os
import re
import shutil
import uuid

import numpy as np
from PIL import Image, ImageDraw

from vit_jax.files import Busy, hold_lock, replace_dir, restore_dir

RESULT = 'result.json'
RUN_RECORDS = re.compile(r'(run|errors)(-\d+-of-\d+)?\.jsonl?', re.IGNORECASE)  # OUT/run.json, OUT/errors.jsonl.


class OutputError(OSError):
  """The output folder cannot be used; the message says why."""


def coco_rle(mask: np.ndarray) -> dict:
  """COCO run-length encoding of a bool [H, W] mask ({'size', 'counts'})."""
  from pycocotools import mask as mask_utils
  rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
  return {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}


def _color(k: int) -> tuple[int, int, int]:
  r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 1.0)
  return int(r * 255), int(g * 255), int(b * 255)


def overlay(image: np.ndarray, instances, ids: list[int] | None = None) -> Image.Image:
  """The picture a person wants: masks tinted, boxes and 'label score' drawn;
  with `ids` (video objects), each object's colour follows its ID and its
  label reads '#ID label score'."""
  keys = ids if ids is not None else range(len(instances))
  canvas = image.astype(np.float32)
  for key, inst in zip(keys, instances):
    canvas[inst.mask] = 0.5 * canvas[inst.mask] + 0.5 * np.array(_color(key), np.float32)
  picture = Image.fromarray(canvas.astype(np.uint8))
  draw = ImageDraw.Draw(picture)
  width = max(1, round(max(image.shape[:2]) / 300))
  for key, inst in zip(keys, instances):
    x0, y0, x1, y1 = inst.box.tolist()
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=_color(key), width=width)
    text = (f'#{key} ' if ids is not None else '') + f'{inst.label} {inst.score:.2f}'
    left, top, right, bottom = draw.textbbox((x0, y0), text)
    draw.rectangle([left, top, right + 2, bottom + 2], fill=_color(key))
    draw.text((x0 + 1, y0 + 1), text, fill=(0, 0, 0))
  return picture


def safe_stem(stem: str) -> str:
  """A file stem as a folder name: no separators or control characters, not
  hidden, at most 100 characters."""
  name = re.sub(r'[^\w.+-]+', '_', stem).lstrip('.')[:100]
  return name or 'image'


def _lock(path: str, exclusive: bool, busy: str):
  """hold_lock, with OutputError(busy) where another process holds it."""
  try:
    return hold_lock(path, exclusive)
  except Busy:
    raise OutputError(busy) from None


class OutputFolder:
  """The --out folder: a lock while open, a folder per image.

  shard: '' for a run over all images; 'I-of-N' for one of several runs
  that write disjoint images into the same folder at the same time.
  """

  def __init__(self, root: str, shard: str = ''):
    self.root, self.shard = root, shard
    self.partial = os.path.join(root, f'.partial-{shard}' if shard else '.partial')
    busy = f'another segment.py is writing to {root!r}; wait for it to finish or choose another --out.'
    self._locks = []
    try:
      os.makedirs(root, exist_ok=True)
      self._locks.append(_lock(os.path.join(root, '.lock'), not shard, busy))
      if shard:
        self._locks.append(_lock(os.path.join(root, f'.lock-{shard}'), True,
                                 f'another segment.py is writing shard {shard} to {root!r}.'))
    except OSError as e:
      for handle in self._locks:
        handle.close()
      if isinstance(e, OutputError):
        raise
      raise OutputError(f'cannot write to --out {root!r} ({e.strerror or e}); give a folder you can write to.') from None
    self.recover()

  @classmethod
  def worker(cls, root: str) -> OutputFolder:
    """A writer into `root` for a process a driver runs (a Ray actor, maybe
    on another machine): no lock (the driver holds OUT's) and a staging
    folder of its own, which the driver's close() clears if the process dies."""
    self = cls.__new__(cls)
    self.root, self.shard, self._locks = root, '', []
    self.partial = os.path.join(root, f'.partial-worker-{uuid.uuid4().hex[:16]}')
    return self

  def close(self) -> None:
    self.recover()
    for handle in self._locks:
      handle.close()

  def recover(self) -> None:
    """Puts back results a killed run had moved aside, and drops its unfinished
    ones: a shard's own, or, for a run over all images (no shard runs then),
    every shard's."""
    partials = [self.partial] if self.shard else [
        os.path.join(self.root, n) for n in os.listdir(self.root) if n == '.partial' or n.startswith('.partial-')]
    for partial in partials:
      old = os.path.join(partial, 'old')
      for name in os.listdir(old) if os.path.isdir(old) else []:
        restore_dir(os.path.join(old, name), os.path.join(self.root, name))
      shutil.rmtree(partial, ignore_errors=True)

  def _record(self, name: str) -> dict | None:
    try:
      with open(os.path.join(self.root, name, RESULT)) as f:
        record = json.load(f)
      return record if isinstance(record, dict) else None
    except (OSError, ValueError):
      return None

  def assign_names(self, sources: list[str], stems: list[str]) -> list[str]:
    """A folder name per source: its stem, with _2, _3 ... where that name is
    taken, by another of these sources (letter case ignored, as on macOS and
    Windows), by a folder that is not this source's earlier result, or by the
    run's records (run.json, errors.jsonl)."""
    names, taken = [], set()
    for source, stem in zip(sources, stems):
      base = safe_stem(stem)
      name, k = base, 1
      while name.lower() in taken or RUN_RECORDS.fullmatch(name) or (
          os.path.lexists(os.path.join(self.root, name)) and (self._record(name) or {}).get('source') != source):
        k += 1
        name = f'{base}_{k}'
      taken.add(name.lower())
      names.append(name)
    return names

  def is_done(self, name: str, source: str, settings: dict) -> bool:
    """Whether NAME holds this source's result under these settings."""
    record = self._record(name) or {}
    return record.get('source') == source and record.get('settings') == settings

  def begin(self, name: str) -> str:
    """A fresh, empty staging folder for NAME's files, out of readers' sight."""
    staging = os.path.join(self.partial, 'new', name)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging

  def commit(self, name: str) -> str:
    """Moves NAME's complete staging folder into place in one rename; returns its path."""
    os.makedirs(os.path.join(self.partial, 'old'), exist_ok=True)
    target = os.path.join(self.root, name)
    replace_dir(os.path.join(self.partial, 'new', name), target, os.path.join(self.partial, 'old', name))
    return target

  def write(self, name: str, source: str, settings: dict, image: np.ndarray, result) -> str:
    """Writes the folder of one image; returns its path."""
    staging = self.begin(name)
    overlay(image, result.instances).save(os.path.join(staging, 'overlay.png'))
    for k, inst in enumerate(result.instances):
      Image.fromarray(inst.mask.astype(np.uint8) * 255).save(os.path.join(staging, f'mask_{k}.png'))
    record = {
        'source': source, 'size': list(image.shape[:2]), 'prompts': result.prompts, 'settings': settings,
        'instances': [{'label': inst.label, 'score': round(inst.score, 4), 'box': inst.box.tolist(),
                       'mask_png': f'mask_{k}.png', 'rle': coco_rle(inst.mask)}
                      for k, inst in enumerate(result.instances)],
    }
    with open(os.path.join(staging, RESULT), 'w') as f:
      json.dump(record, f, indent=1)
    return self.commit(name)
