r"""Text-prompted segmentation of images: CLIPSeg or Grounding DINO finds, SAM or SAM 2
outlines; or SAM 3 does both.

    python segment.py --prompt "dog" photo.jpg
    python segment.py --prompt "skateboard, cap" --out results/ photos/ more.png
    python segment.py --finder grounding-dino --prompt "cat, remote control" https://example.com/cat.jpg
    python segment.py --prompt "dog" --shard 2/4 --out results/ photos/   # one of 4 processes or machines
    python segment.py --finder sam3 --prompt "dog, ball" photos/          # every instance of each phrase

For each image writes a folder --out/NAME/ holding overlay.png, mask_K.png per
instance and result.json (labels, scores, xyxy boxes, COCO RLE masks); NAME
is the file's stem, with _2, _3 ... where it is taken. A folder appears
complete or not at all, even if the run is killed. Images already done with
the same settings by an earlier run are skipped (--redo does them again), so
after an interruption the same command finishes the rest.

Exit status: 0 all done; 1 some images could not be read or segmented (each
said in one line, the others done); 2 nothing done: a bad option, prompt,
--out or weights; 130 Ctrl-C, 143 SIGTERM (finished images are kept).

Weights: --finder-model is a Hugging Face name (taken from the HF cache;
default CIDAS/clipseg-rd64-refined or IDEA-Research/grounding-dino-tiny) or a
folder saved with save_pretrained; --sam-checkpoint is an official SAM .pth
file (https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth
for vit_b, sam_vit_l_0b3195.pth / sam_vit_h_4b8939.pth for vit_l / vit_h),
by default downloaded once into torch.hub's checkpoint folder and checked;
--sam2-model is a Hugging Face name or folder, like --finder-model. SAM 3
(--finder sam3, default facebook/sam3) is gated on the Hub: accept its
license there, then log in (hf auth login) and run once online, or save a
copy with save_pretrained and pass its folder.
"""

import argparse
import hashlib
import os
import sys
import urllib.parse

from seg_bridge.cli import (OneLineParser, add_engine_arguments, add_segmenter_arguments, checked, engine_problem,
                            error, listed_inputs, run_job, settings_for, source_of, unique_sources)
from vit_jax.images import IMAGE_SUFFIXES
from vit_jax.interrupts import StopRequest

STOP = StopRequest()  # Ctrl-C and SIGTERM: finished images are kept, never a traceback.
if __name__ == '__main__':
  STOP.install()


def image_paths(inputs: list[str]) -> tuple[list[str], list[str]]:
  """Files, http(s) URLs, and the images in folders, each once; and a line
  for each folder that cannot be listed."""
  paths, errors = [], []
  for item in inputs:
    if os.path.isdir(item):
      try:
        paths += sorted(os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(IMAGE_SUFFIXES))
      except OSError as e:
        errors.append(f'{item!r}: cannot list the folder ({e.strerror or e}).')
    else:
      paths.append(item)
  return list(dict.fromkeys(paths)), errors


def shard_spec(text: str) -> tuple[int, int]:
  """argparse type: 'I/N' -> (I, N), 1 <= I <= N."""
  index, _, count = text.partition('/')
  if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
    raise argparse.ArgumentTypeError(f'{text!r} is not I/N with 1 <= I <= N, e.g. 2/4')
  return int(index), int(count)


def in_shard(path: str, shard: tuple[int, int]) -> bool:
  """Whether an image belongs to shard (I, N): by a hash of its path as listed,
  so every run of the same command agrees on any machine, each image is in
  exactly one shard, and an image added later moves no other."""
  index, count = shard
  return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], 'big') % count == index - 1


def stem_of(path: str) -> str:
  if '://' in path:
    try:
      path = urllib.parse.urlparse(path).path
    except ValueError:  # A malformed URL ('http://[::1'): its download fails in one line, later, alone.
      path = path.rsplit('/', 1)[-1]
  return os.path.splitext(os.path.basename(path))[0]


def parse_args(argv=None):
  parser = OneLineParser(description=__doc__.split('\n')[0])
  parser.add_argument('images', nargs='*', help='Image files, folders of images, or http(s) URLs.')
  parser.add_argument('--prompt', required=True, help='What to segment; several objects separated by commas.')
  parser.add_argument('--out', default='segment_out', help='Output folder (default: segment_out).')
  parser.add_argument('--redo', action='store_true',
                      help='Segment again the images an earlier run already did with the same settings.')
  add_segmenter_arguments(parser)
  parser.add_argument('--shard', type=shard_spec, default=None, metavar='I/N',
                      help='Segment only the I-th of N disjoint shares of the images (by a hash of each path), '
                           'so N processes or machines split a large folder; they may share --out. For job '
                           'arrays without Ray (SLURM); with a Ray cluster use --engine ray.')
  add_engine_arguments(parser, 'image')
  return parser.parse_intermixed_args(argv)  # Images may come before or after the options.


def main(argv=None, stop=None) -> int:
  """Runs the command; returns its exit status. `stop` (a StopRequest) gives
  the status of an interrupt: 130 for Ctrl-C, 143 for SIGTERM."""
  args = parse_args(argv)
  from seg_bridge.types import PromptError
  problem = engine_problem(args)
  if problem:
    return error(problem)
  try:
    options, prompts = checked(args)
    inputs = args.images + listed_inputs(args.list)
  except (PromptError, ValueError) as e:
    return error(str(e))
  if not inputs:
    return error('give images, folders of them, URLs, or --list FILE.')
  paths, listing_errors = image_paths(inputs)
  for line in listing_errors:
    print(f'error: {line}', file=sys.stderr)
  paths, notes = unique_sources(paths)
  for line in notes:
    print(f'note: {line}', file=sys.stderr)
  if not paths:
    return error('no images found in the given folders.') if not listing_errors else 1
  from seg_bridge.jobs import ImageJob
  job = ImageJob(options, tuple(prompts), settings_for(options, prompts), args.out)
  mine = [p for p in paths if in_shard(p, args.shard)] if args.shard else paths

  def items_of(out):  # Once the models load and --out is open.
    if args.shard:
      print('shard {}/{}: {} of the {} images.'.format(*args.shard, len(mine), len(paths)))
    return work_items(out, paths, mine)
  status = run_job(args, job, len(mine), items_of, unit='image', stop=stop,
                   shard='{}-of-{}'.format(*args.shard) if args.shard else '')
  return 1 if status == 0 and listing_errors else status


def work_items(out, paths: list[str], mine: list[str]) -> list:
  """An Item (path, source, folder name) for each image of `mine` (some or
  all of `paths`). Folder names are assigned over all `paths`, so that shards
  writing into one --out agree on them."""
  from seg_bridge.jobs import Item
  sources = [source_of(p) for p in paths]
  names = dict(zip(paths, out.assign_names(sources, [stem_of(p) for p in paths])))
  chosen = set(mine)
  return [Item(p, s, names[p]) for p, s in zip(paths, sources) if p in chosen]


if __name__ == '__main__':
  try:
    sys.exit(main(stop=STOP))
  except KeyboardInterrupt:  # Before any image.
    print('interrupted before any image was done; nothing was written.', file=sys.stderr)
    sys.exit(STOP.exit_status)
