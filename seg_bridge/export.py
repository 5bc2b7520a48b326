r"""A segment.py run as training data: COCO instances and a folder of crops.

    python segment.py --prompt "cat, dog" photos/ --out masks/
    python -m seg_bridge.export masks/ dataset/
    python train.py --config configs/cpu_quick.py --config.data.source=folder:dataset/crops

OUT gets instances.json (COCO: images, categories from the prompts, one
annotation per instance with its RLE mask, xywh box, area and score;
pycocotools reads it) and crops/{train,test}/LABEL/IMAGE_K.jpg: each
instance's box, widened by --padding on each side and clipped to the image,
kept where its shorter side has --min-size pixels; an image's crops all go
to one split, `test` for a --test-share of the images (by a hash of the
image's folder name: the same in every export). OUT appears complete or not
at all (written in OUT.partial, renamed). Only complete image folders are
read (segment.py commits each in one rename); an image that cannot be read
again for its crops is skipped and counted.

Exit status: 0 written; 1 written, some images skipped; 2 nothing to export
(not a segment.py folder, empty, or OUT exists).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

from seg_bridge.outputs import RESULT
from vit_jax.files import atomic_write, staged_dir
from vit_jax.images import ImageError, load_image
from vit_jax.interrupts import StopRequest


class ExportError(ValueError):
  """Nothing can be exported; the message says why."""


def read_run(run: str) -> list[tuple[str, dict]]:
  """(folder name, result.json) of every complete image folder of `run`, sorted by name."""
  if not os.path.isdir(run):
    raise ExportError(f'{run!r} is not a folder; give the --out folder of a segment.py run.')
  records = []
  for name in sorted(os.listdir(run)):
    path = os.path.join(run, name, RESULT)
    if name.startswith('.') or not os.path.isfile(path):
      continue
    try:
      with open(path) as f:
        record = json.load(f)
    except (OSError, ValueError):
      record = None
    if not isinstance(record, dict) or not {'instances', 'size', 'source'} <= set(record):
      raise ExportError(f'{path!r} is not a result of segment.py (unreadable or without its fields).')
    records.append((name, record))
  if not records:
    raise ExportError(f'{run!r} holds no image folders of a segment.py run (each NAME/{RESULT}); nothing to export.')
  return records


def coco(records: list[tuple[str, dict]]) -> dict:
  """COCO instances of the run: categories are the prompts (sorted), ids from 1."""
  categories = sorted({label for _, record in records for label in record.get('prompts', [])}
                      | {inst['label'] for _, record in records for inst in record['instances']})
  category_id = {name: k + 1 for k, name in enumerate(categories)}
  images, annotations = [], []
  for image_id, (name, record) in enumerate(records, start=1):
    height, width = record['size']
    images.append({'id': image_id, 'file_name': record['source'], 'folder': name, 'height': height, 'width': width})
    for inst in record['instances']:
      x0, y0, x1, y1 = inst['box']
      annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': category_id[inst['label']],
                          'segmentation': inst['rle'], 'area': _area(inst['rle']),
                          'bbox': [x0, y0, x1 - x0, y1 - y0], 'score': inst['score'], 'iscrowd': 0})
  return {'images': images, 'annotations': annotations,
          'categories': [{'id': k, 'name': name} for name, k in category_id.items()]}


def _area(rle: dict) -> int:
  from pycocotools import mask as mask_utils
  return int(mask_utils.area({'size': rle['size'], 'counts': rle['counts'].encode()}))


def split_of(name: str, test_share: float) -> str:
  """'test' for a stable `test_share` of the image folder names, else 'train'."""
  draw = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], 'big') / 2**64
  return 'test' if draw < test_share else 'train'


def crop_box(box, width: int, height: int, padding: float) -> tuple[int, int, int, int]:
  """The box widened by `padding` of its size on each side, in whole pixels, inside the image."""
  x0, y0, x1, y1 = box
  dx, dy = (x1 - x0) * padding, (y1 - y0) * padding
  return (max(0, int(x0 - dx)), max(0, int(y0 - dy)), min(width, int(round(x1 + dx))),
          min(height, int(round(y1 + dy))))


def write_crops(records, out: str, *, padding: float, min_size: int, test_share: float) -> tuple[dict, list[str]]:
  """Writes crops/SPLIT/LABEL/NAME_K.jpg; returns ({split: count}, the images skipped, with why)."""
  from PIL import Image
  counts, skipped = {'train': 0, 'test': 0}, []
  for name, record in records:
    if not record['instances']:
      continue
    try:
      image = load_image(record['source'])
    except ImageError as e:
      skipped.append(str(e))
      continue
    height, width = image.shape[:2]
    split = split_of(name, test_share)
    for k, inst in enumerate(record['instances']):
      x0, y0, x1, y1 = crop_box(inst['box'], width, height, padding)
      if min(x1 - x0, y1 - y0) < min_size:
        continue
      folder = os.path.join(out, 'crops', split, inst['label'].replace('/', '_'))
      os.makedirs(folder, exist_ok=True)
      Image.fromarray(image[y0:y1, x0:x1]).save(os.path.join(folder, f'{name}_{k}.jpg'), quality=95)
      counts[split] += 1
  return counts, skipped


def export(run: str, out: str, *, padding: float = 0.1, min_size: int = 16, test_share: float = 0.2) -> dict:
  """Writes OUT (see the module docstring); returns what was written."""
  records = read_run(run)
  with staged_dir(out) as staging:
    instances = coco(records)
    atomic_write(os.path.join(staging, 'instances.json'), json.dumps(instances).encode())
    counts, skipped = write_crops(records, staging, padding=padding, min_size=min_size, test_share=test_share)
  return {'images': len(records), 'instances': len(instances['annotations']),
          'categories': [c['name'] for c in instances['categories']], 'crops': counts, 'skipped': skipped}


def _fraction(text: str) -> float:
  value = float(text)
  if not 0.0 <= value < 1.0:
    raise argparse.ArgumentTypeError(f'{text!r} is not a fraction in [0, 1)')
  return value


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m seg_bridge.export', description=__doc__.split('\n')[0])
  parser.add_argument('run', help="a segment.py run's --out folder")
  parser.add_argument('out', help='the folder to write (must not exist)')
  parser.add_argument('--padding', type=_fraction, default=0.1, help="added to each side of a crop, of the box's size")
  parser.add_argument('--min-size', type=int, default=16, help='crops whose shorter side is smaller are left out')
  parser.add_argument('--test-share', type=_fraction, default=0.2, help='share of the images whose crops go to test/')
  args = parser.parse_args(argv)
  if os.path.exists(args.out):
    print(f'error: {args.out!r} exists; give a new folder.', file=sys.stderr)
    return 2
  stop = StopRequest()
  stop.install()
  try:
    done = export(args.run, args.out, padding=args.padding, min_size=args.min_size, test_share=args.test_share)
  except ExportError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except OSError as e:
    print(f'error: cannot write {args.out!r} ({e.strerror or e}); nothing was kept.', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('interrupted; nothing was kept.', file=sys.stderr)
    return stop.exit_status
  for line in done['skipped']:
    print(f'skipped: {line}', file=sys.stderr)
  print(f"Wrote {args.out!r}: {done['instances']} instances of {len(done['categories'])} categories in "
        f"{done['images']} images (instances.json); crops: train {done['crops']['train']}, test "
        f"{done['crops']['test']}.")
  return 1 if done['skipped'] else 0


if __name__ == '__main__':
  sys.exit(main())
