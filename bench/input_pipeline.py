r"""How fast the streamed input pipeline feeds: decode + random-resized crop +
flip to 224 px on real JPEGs, per worker count; decode alone per core (PIL,
and PIL's JPEG draft mode, which decodes at 1/2, 1/4 or 1/8 scale).

    python bench/input_pipeline.py --workers 0,1,2 --out results/input_pipeline_cpu.json

The JPEGs are made from the CIFAR-10 copy: upsampled to 256-400 px (bicubic)
and re-encoded at quality 90, so decoding costs what a photo's does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from record import CIFAR10_JPEG, ROOT, provenance, write_record

sys.path.insert(0, ROOT)

from vit_jax import data, images  # noqa: E402
from vit_jax.data import sources, stream  # noqa: E402


def make_jpegs(folder: str, count: int, seed: int = 0) -> None:
  """train/CLASS/K.jpg: `count` CIFAR-10 images upsampled to 256-400 px."""
  cifar = data.load(f'folder:{CIFAR10_JPEG}', ('test',))['test']
  rng = np.random.default_rng(seed)
  for k in range(count):
    size = tuple(int(s) for s in rng.integers(256, 401, 2))
    image = Image.fromarray(cifar.images[k]).resize(size, Image.BICUBIC)
    path = os.path.join(folder, 'train', cifar.class_names[cifar.labels[k]], f'{k:05d}.jpg')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, quality=90)


def decode_rate(source, draft: bool, seconds: float = 5.0) -> float:
  """Images decoded per second in this process (one core)."""
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    data_bytes, _ = source[done % len(source)]
    images.decode(data_bytes, 'bench', draft=(224, 224) if draft else None)
    done += 1
  return done / (time.perf_counter() - start)


def pipeline_rate(folder: str, workers: int, batches: int) -> float:
  """Images per second out of the stream (batches of 64 at 224 px)."""
  source = sources.open_source(f'folder:{folder}', 'train')
  s = stream.Stream(source, global_batch=64, image_size=224, seed=0, train=True, workers=workers)
  iterator = s.batches()
  next(iterator)  # Workers started, first batch made.
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * 64 / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workers', default='0,1,2', help='worker counts to time, alternated over rounds')
  parser.add_argument('--images', type=int, default=1000)
  parser.add_argument('--batches', type=int, default=12)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--out', default=None)
  parser.add_argument('--one', nargs=2, metavar=('FOLDER', 'WORKERS'), help=argparse.SUPPRESS)  # A timed child.
  args = parser.parse_args()
  if args.one:
    print(pipeline_rate(args.one[0], int(args.one[1]), args.batches))
    return
  started = provenance()
  counts = [int(w) for w in args.workers.split(',')]
  with tempfile.TemporaryDirectory() as folder:
    make_jpegs(folder, args.images)
    source = sources.open_source(f'folder:{folder}', 'train')
    decode = {'pil': [], 'pil_draft': []}
    rates = {w: [] for w in counts}
    for _ in range(args.rounds):  # Alternated; each worker count in its own process.
      for kind in decode:
        decode[kind].append(decode_rate(source, draft=kind == 'pil_draft'))
      for w in counts:
        out = subprocess.run([sys.executable, __file__, '--one', folder, str(w), '--batches', str(args.batches)],
                             capture_output=True, text=True, check=True).stdout
        rates[w].append(float(out.strip().splitlines()[-1]))
  result = {
      'decode_images_per_s_one_core': {k: round(float(np.median(v)), 1) for k, v in decode.items()},
      'pipeline_images_per_s_by_workers': {str(w): round(float(np.median(v)), 1) for w, v in rates.items()},
      'all_rounds': {'decode': decode, 'pipeline': {str(w): v for w, v in rates.items()}},
  }
  print(json.dumps(result, indent=1))
  if args.out:
    write_record(args.out, started, **result)


if __name__ == '__main__':
  main()
