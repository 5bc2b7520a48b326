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

import os
import sys

from seg_bridge.cli import (OneLineParser, add_engine_arguments, add_segmenter_arguments, checked, engine_problem,
                            error, listed_inputs, positive_int, run_job, settings_for, source_of, unique_sources)
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


def parse_args(argv=None):
  parser = OneLineParser(description=__doc__.split('\n')[0])
  parser.add_argument('videos', nargs='*', help='Video files, or folders of them.')
  parser.add_argument('--prompt', required=True, help='What to segment; several objects separated by commas.')
  parser.add_argument('--out', default='video_out', help='Output folder (default: video_out).')
  parser.add_argument('--every', type=positive_int, default=15,
                      help='Look for new objects every this many frames (and on each frame while none is tracked).')
  parser.add_argument('--tracker-model', default=TRACKER_DEFAULT,
                      help='SAM 2 video model: a Hugging Face name or local folder.')
  parser.add_argument('--max-frames', type=positive_int, default=None, help='Only the first N frames of each video.')
  parser.add_argument('--redo', action='store_true', help='Segment again the videos an earlier run already did.')
  add_segmenter_arguments(parser)
  add_engine_arguments(parser, 'video')
  return parser.parse_intermixed_args(argv)


def main(argv=None, stop=None) -> int:
  args = parse_args(argv)
  from seg_bridge.types import PromptError
  problem = engine_problem(args)
  if problem:
    return error(problem)
  try:
    options, prompts = checked(args)
    inputs = args.videos + listed_inputs(args.list)
  except (PromptError, ValueError) as e:
    return error(str(e))
  if not inputs:
    return error('give videos, folders of them, or --list FILE.')
  paths, notes = unique_sources(video_paths(inputs))
  for line in notes:
    print(f'note: {line}', file=sys.stderr)
  if not paths:
    return error('no videos found in the given folders.')
  from seg_bridge.jobs import Item, VideoJob
  settings = {**settings_for(options, prompts), 'tracker': args.tracker_model, 'every': args.every,
              'max_frames': args.max_frames}
  job = VideoJob(options, tuple(prompts), settings, args.out, tracker_model=args.tracker_model, every=args.every,
                 max_frames=args.max_frames, frame_bars=args.engine == 'local')

  def items_of(out):  # One video per task.
    sources = [source_of(p) for p in paths]
    names = out.assign_names(sources, [os.path.splitext(os.path.basename(p))[0] for p in paths])
    return [Item(*row) for row in zip(paths, sources, names)]
  return run_job(args, job, len(paths), items_of, unit='video', stop=stop)


if __name__ == '__main__':
  try:
    sys.exit(main(stop=STOP))
  except KeyboardInterrupt:
    print('interrupted before any video was done; nothing was written.', file=sys.stderr)
    sys.exit(STOP.exit_status)
