"""One input's work, the same in this process (--engine local) and in a Ray
actor (--engine ray): a job's worker loads the models once, then segments
each input it is given and commits its output folder in one rename.

    job = ImageJob(options, prompts, settings, out='results')
    work = job.worker(job.load(), OutputFolder('results'))   # or job.open(): a worker writing on its own
    done = work(Item(path='dog.jpg', source='/abs/dog.jpg', name='dog'))
    done.status, done.line        # 'written', "'dog.jpg': 'dog' 0.93 -> 'results/dog'"

A job is plain data (picklable: Ray ships it to its actors). Writing is
idempotent: a retried input replaces its folder with the same files, so an
actor restarted after a crash never leaves a duplicate or a half-written one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from seg_bridge.build import Options

WRITTEN, FAILED, UNUSABLE = 'written', 'failed', 'unusable'  # UNUSABLE: the models cannot load; nothing can be done.


@dataclasses.dataclass(frozen=True)
class Item:
  path: str  # The input as given (a file or URL).
  source: str  # What identifies it across runs (seg_bridge.cli.source_of).
  name: str  # Its output folder's name under --out.


@dataclasses.dataclass(frozen=True)
class Done:
  path: str
  name: str
  status: str  # WRITTEN, FAILED or UNUSABLE
  line: str  # What to print: what was found, or why it failed, in one line.


def failure(item: Item, root: str, error: Exception, said: tuple[type, ...]) -> Done:
  """The Done row of an input that failed with `error`: errors of the types
  `said` are one line already; OSError here is writing; anything else, the
  models could not take the input (the rest go on)."""
  from seg_bridge.loading import reason
  if isinstance(error, said):
    line = f'error: {error}'
  elif isinstance(error, OSError):
    line = f'error: {item.path!r}: cannot write its results to {root!r} ({error.strerror or error}).'
  else:
    line = f'error: {item.path!r}: cannot segment it ({reason(error)}).'
  return Done(item.path, item.name, FAILED, line)


def load_segmenter(options: Options, prompts: tuple[str, ...]):
  """The segmenter the options name, checked against the prompts (PromptError,
  ValueError or OSError where it cannot serve)."""
  from seg_bridge.build import build
  segmenter, _ = build(options)
  segmenter.check_prompts(list(prompts))
  return segmenter


@dataclasses.dataclass(frozen=True)
class ImageJob:
  """segment.py's work on one image: find, outline, write OUT/NAME/."""

  options: Options
  prompts: tuple[str, ...]
  settings: dict
  out: str

  def load(self):
    """The models (PromptError, ValueError or OSError where they cannot serve)."""
    return load_segmenter(self.options, self.prompts)

  def open(self) -> Callable[[Item], Done]:
    """A worker with its models, writing into --out on its own (a Ray actor)."""
    from seg_bridge.outputs import OutputFolder
    return self.worker(self.load(), OutputFolder.worker(self.out))

  def worker(self, segmenter, out) -> Callable[[Item], Done]:
    """Item -> Done: segments with the loaded models, writes through `out` (an OutputFolder)."""
    from vit_jax.images import ImageError, load_image

    def work(item: Item) -> Done:
      try:
        image = load_image(item.path)
        result = segmenter.segment(image, list(self.prompts))
        folder = out.write(item.name, item.source, self.settings, image, result)
      except Exception as e:  # One input fails alone.
        return failure(item, out.root, e, said=(ImageError,))
      found = ', '.join(f'{i.label!r} {i.score:.2f}' for i in result.instances) or 'nothing'
      return Done(item.path, item.name, WRITTEN, f'{item.path!r}: {found} -> {folder!r}')
    return work


@dataclasses.dataclass(frozen=True)
class VideoJob(ImageJob):
  """segment_video.py's work on one video: track through it, write OUT/NAME/."""

  tracker_model: str = ''
  every: int = 15
  max_frames: int | None = None
  frame_bars: bool = True  # A progress bar over each video's frames (not in Ray actors).

  def load(self):
    from seg_bridge.tracking import Sam2Tracker, VideoTracker
    return VideoTracker(super().load(), Sam2Tracker.load(self.tracker_model, self.options.device), every=self.every)

  def worker(self, tracker, out) -> Callable[[Item], Done]:
    return lambda item: self._track(tracker, out, item)

  def _track(self, tracker, out, item: Item) -> Done:
    from tqdm import tqdm

    from seg_bridge.video_io import VideoError, VideoReader
    from seg_bridge.video_outputs import VideoOutputs
    try:
      with VideoReader(item.path, self.max_frames) as video:
        outputs = VideoOutputs(out.begin(item.name), video.fps)
        try:
          for frame, result in tqdm(tracker.track(video, list(self.prompts)), total=video.frame_count, unit='frame',
                                    desc=os.path.basename(item.path), disable=not self.frame_bars):
            outputs.add(frame, result)
        except BaseException:
          outputs.abort()
          raise
        outputs.close({'source': item.source, 'settings': self.settings, 'prompts': list(self.prompts),
                       'size': list(video.size)})
      folder = out.commit(item.name)
    except Exception as e:  # One input fails alone.
      return failure(item, out.root, e, said=(VideoError,))
    return Done(item.path, item.name, WRITTEN, f'{item.path!r}: {len(outputs.seen)} objects -> {folder!r}')
