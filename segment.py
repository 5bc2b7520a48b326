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
import collections
import hashlib
import os
import sys
import urllib.parse

from seg_bridge.cli import (OneLineParser, add_segmenter_arguments, checked, error, load_segmenter, source_of,
                            unique_sources)
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
  parser.add_argument('images', nargs='+', help='Image files, folders of images, or http(s) URLs.')
  parser.add_argument('--prompt', required=True, help='What to segment; several objects separated by commas.')
  parser.add_argument('--out', default='segment_out', help='Output folder (default: segment_out).')
  parser.add_argument('--redo', action='store_true',
                      help='Segment again the images an earlier run already did with the same settings.')
  add_segmenter_arguments(parser)
  parser.add_argument('--shard', type=shard_spec, default=None, metavar='I/N',
                      help='Segment only the I-th of N disjoint shares of the images (by a hash of each path), '
                           'so N processes or machines split a large folder; they may share --out.')
  return parser.parse_intermixed_args(argv)  # Images may come before or after the options.


def main(argv=None, stop=None) -> int:
  """Runs the command; returns its exit status. `stop` (a StopRequest) gives
  the status of an interrupt: 130 for Ctrl-C, 143 for SIGTERM."""
  args = parse_args(argv)
  from seg_bridge.types import PromptError
  try:
    options, prompts = checked(args)
  except (PromptError, ValueError) as e:
    return error(str(e))
  paths, listing_errors = image_paths(args.images)
  for line in listing_errors:
    print(f'error: {line}', file=sys.stderr)
  paths, notes = unique_sources(paths)
  for line in notes:
    print(f'note: {line}', file=sys.stderr)
  if not paths:
    return error('no images found in the given folders.') if not listing_errors else 1
  try:
    segmenter, settings = load_segmenter(options, prompts)
  except (PromptError, ValueError, OSError) as e:  # Missing or broken weights, a bad --device, prompts too long.
    return error(str(e))
  from seg_bridge.outputs import OutputError, OutputFolder
  try:
    out = OutputFolder(args.out, shard='{}-of-{}'.format(*args.shard) if args.shard else '')
  except OutputError as e:
    return error(str(e))
  counts = collections.Counter()  # written, skipped, failed
  mine = [p for p in paths if in_shard(p, args.shard)] if args.shard else paths
  if args.shard:
    print('shard {}/{}: {} of the {} images.'.format(*args.shard, len(mine), len(paths)))
  try:
    segment_all(segmenter, settings, prompts, paths, mine, out, counts, redo=args.redo)
  except KeyboardInterrupt:
    print(f'interrupted: {counts["written"] + counts["skipped"]} of {len(mine)} images done in {args.out!r}; run '
          'the same command again to finish the rest.', file=sys.stderr)
    return stop.exit_status if stop is not None else 130
  finally:
    out.close()
  if counts['skipped']:
    print(f'{counts["skipped"]} of {len(mine)} images were done by an earlier run with the same settings and kept '
          '(--redo does them again).')
  return 1 if counts['failed'] or listing_errors else 0


def segment_all(segmenter, settings, prompts, paths, mine, out, counts: collections.Counter, *, redo: bool) -> None:
  """Segments and writes each image of `mine` (some or all of `paths`), one
  line per failure, counting in `counts` the images written, skipped (done
  before) and failed. Folder names are assigned over all `paths`, so that
  shards writing into one --out agree on them."""
  from tqdm import tqdm

  from vit_jax.images import ImageError, load_image
  from seg_bridge.loading import reason

  sources = [source_of(p) for p in paths]
  names = dict(zip(paths, out.assign_names(sources, [stem_of(p) for p in paths])))
  chosen = set(mine)
  work = [(p, s, names[p]) for p, s in zip(paths, sources) if p in chosen]
  for path, source, name in tqdm(work, unit='image', disable=len(work) < 2):
    if not redo and out.is_done(name, source, settings):
      counts['skipped'] += 1
      continue
    try:
      image = load_image(path)
      result = segmenter.segment(image, prompts)
      out.write(name, source, settings, image, result)
    except ImageError as e:
      counts['failed'] += 1
      tqdm.write(f'error: {e}', file=sys.stderr)
      continue
    except OSError as e:
      counts['failed'] += 1
      tqdm.write(f'error: {path!r}: cannot write its results to {out.root!r} ({e.strerror or e}).', file=sys.stderr)
      continue
    except Exception as e:  # The finder or SAM cannot take this image (e.g. a few pixels wide); the rest go on.
      counts['failed'] += 1
      tqdm.write(f'error: {path!r}: cannot segment it ({reason(e)}).', file=sys.stderr)
      continue
    counts['written'] += 1
    found = ', '.join(f'{i.label!r} {i.score:.2f}' for i in result.instances) or 'nothing'
    tqdm.write(f'{path!r}: {found} -> {os.path.join(out.root, name)!r}')


if __name__ == '__main__':
  try:
    sys.exit(main(stop=STOP))
  except KeyboardInterrupt:  # Before any image.
    print('interrupted before any image was done; nothing was written.', file=sys.stderr)
    sys.exit(STOP.exit_status)
