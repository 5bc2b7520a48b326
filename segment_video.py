r"""Text-prompted video segmentation with stable object IDs: a text segmenter
finds the objects on key frames, SAM 2's video model follows them between.

    python segment_video.py --prompt "dog, ball" clip.mp4
    python segment_video.py --prompt "person" --every 10 --finder grounding-dino --out runs/ videos/
    python segment_video.py --prompt "car" --finder sam3 traffic.mp4

For each video writes --out/NAME/: overlay.mp4 (masks in each ID's colour,
'#ID label score'), masks.jsonl (per frame, per object: ID, label, score,
box, COCO RLE), ids/FRAME.png (uint16 maps of object IDs) and result.json
(settings, and per ID its label and frames). IDs stay with their objects; an
object found later gets a new ID without restarting the others; one that
leaves and comes back keeps its ID where that is clear (see
seg_bridge/tracking.py). A video's folder appears complete or not at all;
videos done before with the same settings are skipped (--redo does them).

Exit status: 0 all done; 1 some videos could not be read (each said in one
line, the others done); 2 nothing done: a bad option, prompt, --out or
weights; 130 Ctrl-C, 143 SIGTERM (finished videos are kept).

Weights: as segment.py (--finder, --finder-model, --sam-checkpoint,
--sam2-model, for the key frames), and --tracker-model, a SAM 2 Hugging Face
name or folder (default facebook/sam2.1-hiera-large).
"""

import collections
import os
import sys

from seg_bridge.cli import (OneLineParser, add_segmenter_arguments, checked, error, load_segmenter, source_of,
                            unique_sources)
from vit_jax.interrupts import StopRequest

STOP = StopRequest()  # Ctrl-C and SIGTERM: finished videos are kept, never a traceback.
if __name__ == '__main__':
  STOP.install()

VIDEO_SUFFIXES = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v')
TRACKER_DEFAULT = 'facebook/sam2.1-hiera-large'


def video_paths(inputs: list[str]) -> list[str]:
  paths = []
  for item in inputs:
    if os.path.isdir(item):
      paths += sorted(os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(VIDEO_SUFFIXES))
    else:
      paths.append(item)
  return list(dict.fromkeys(paths))


def positive_int(text: str) -> int:
  import argparse
  if not (text.isdigit() and int(text) >= 1):
    raise argparse.ArgumentTypeError(f'{text!r} is not a whole number >= 1')
  return int(text)


def parse_args(argv=None):
  parser = OneLineParser(description=__doc__.split('\n')[0])
  parser.add_argument('videos', nargs='+', help='Video files, or folders of them.')
  parser.add_argument('--prompt', required=True, help='What to segment; several objects separated by commas.')
  parser.add_argument('--out', default='video_out', help='Output folder (default: video_out).')
  parser.add_argument('--every', type=positive_int, default=15,
                      help='Look for new objects every this many frames (and on each frame while none is tracked).')
  parser.add_argument('--tracker-model', default=TRACKER_DEFAULT,
                      help='SAM 2 video model: a Hugging Face name or local folder.')
  parser.add_argument('--max-frames', type=positive_int, default=None, help='Only the first N frames of each video.')
  parser.add_argument('--redo', action='store_true', help='Segment again the videos an earlier run already did.')
  add_segmenter_arguments(parser)
  return parser.parse_intermixed_args(argv)


def main(argv=None, stop=None) -> int:
  args = parse_args(argv)
  from seg_bridge.types import PromptError
  try:
    options, prompts = checked(args)
  except (PromptError, ValueError) as e:
    return error(str(e))
  paths, notes = unique_sources(video_paths(args.videos))
  for line in notes:
    print(f'note: {line}', file=sys.stderr)
  if not paths:
    return error('no videos found in the given folders.')
  try:
    tracker, settings = load_tracker(args, options, prompts)
  except (PromptError, ValueError, OSError) as e:  # Missing or broken weights, a bad --device, prompts too long.
    return error(str(e))
  from seg_bridge.outputs import OutputError, OutputFolder
  try:
    out = OutputFolder(args.out)
  except OutputError as e:
    return error(str(e))
  counts = collections.Counter()
  try:
    for path in paths:
      segment_video(tracker, settings, prompts, path, out, counts, redo=args.redo, max_frames=args.max_frames)
  except KeyboardInterrupt:
    print(f'interrupted: {counts["written"] + counts["skipped"]} of {len(paths)} videos done in {args.out!r}; run '
          'the same command again to finish the rest.', file=sys.stderr)
    return stop.exit_status if stop is not None else 130
  finally:
    out.close()
  if counts['skipped']:
    print(f'{counts["skipped"]} of {len(paths)} videos were done by an earlier run with the same settings and kept '
          '(--redo does them again).')
  return 1 if counts['failed'] else 0


def load_tracker(args, options, prompts):
  """The key frames' segmenter and SAM 2's tracker, and the settings that make a result."""
  from seg_bridge.tracking import Sam2Tracker, VideoTracker
  segmenter, settings = load_segmenter(options, prompts)
  tracker = VideoTracker(segmenter, Sam2Tracker.load(args.tracker_model, options.device), every=args.every)
  return tracker, {**settings, 'tracker': args.tracker_model, 'every': args.every, 'max_frames': args.max_frames}


def segment_video(tracker, settings, prompts, path, out, counts, *, redo: bool, max_frames: int | None) -> None:
  """Tracks and writes one video, or says in one line why not; counts it in `counts`."""
  from tqdm import tqdm

  from seg_bridge.loading import reason
  from seg_bridge.video_io import VideoError, VideoReader
  from seg_bridge.video_outputs import VideoOutputs

  source = source_of(path)
  name = out.assign_names([source], [os.path.splitext(os.path.basename(path))[0]])[0]
  if not redo and out.is_done(name, source, settings):
    counts['skipped'] += 1
    return
  try:
    with VideoReader(path, max_frames) as video:
      outputs = VideoOutputs(out.begin(name), video.fps)
      try:
        for frame, result in tqdm(tracker.track(video, prompts), total=video.frame_count, unit='frame',
                                  desc=os.path.basename(path)):
          outputs.add(frame, result)
      except BaseException:
        outputs.abort()
        raise
      outputs.close({'source': source, 'settings': settings, 'prompts': prompts, 'size': list(video.size)})
    out.commit(name)
  except VideoError as e:
    counts['failed'] += 1
    print(f'error: {e}', file=sys.stderr)
    return
  except OSError as e:
    counts['failed'] += 1
    print(f'error: {path!r}: cannot write its results to {out.root!r} ({e.strerror or e}).', file=sys.stderr)
    return
  except Exception as e:  # pylint: disable=broad-except  (the models cannot take this video; the rest go on)
    counts['failed'] += 1
    print(f'error: {path!r}: cannot segment it ({reason(e)}).', file=sys.stderr)
    return
  counts['written'] += 1
  print(f'{path!r}: {len(outputs.seen)} objects -> {os.path.join(out.root, name)!r}')


if __name__ == '__main__':
  try:
    sys.exit(main(stop=STOP))
  except KeyboardInterrupt:
    print('interrupted before any video was done; nothing was written.', file=sys.stderr)
    sys.exit(STOP.exit_status)
