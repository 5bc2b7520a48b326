r"""What Ray costs and gives segment.py: images per second of --engine local
and of --engine ray with 1 and 2 workers, on the same images, each run a
segment.py process of its own, the ways alternated over rounds (medians).

    python bench/segment_engine.py --images 6 --rounds 2 --out results/segment_engine_cpu.json

The models have their real sizes and random weights, as in
bench/segment_prompts.py: CLIPSeg rd64-refined and SAM ViT-B (threshold 0:
every image has one region, so SAM always runs). The images are random
640x480 JPEGs. Two rates per run: over the whole command (model loading and,
for Ray, starting a local cluster included) and over the segmentation itself
(run.json's seconds: from the first image asked for to the last one back,
actors' model loading included for Ray). Ray gives each actor one CPU (its
torch uses one thread); the local engine's torch uses every core.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from record import ROOT, provenance, write_record
from segment_prompts import save_random_clipseg

WAYS = {'local': [], 'ray, 1 worker': ['--engine', 'ray', '--workers', '1'],
        'ray, 2 workers': ['--engine', 'ray', '--workers', '2']}


def run(way: str, images: str, models: str, sam: str, out: str) -> dict:
  """Seconds of the whole command and of the segmentation, and the images written."""
  args = [sys.executable, 'segment.py', images, '--prompt', 'dog', '--finder-model', models, '--sam-checkpoint', sam,
          '--threshold', '0', '--min-score', '0', '--device', 'cpu', '--out', out, *WAYS[way]]
  started = time.perf_counter()
  result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  wall = time.perf_counter() - started
  if result.returncode:
    sys.exit(f'{way}: segment.py failed: {result.stderr.strip().splitlines()[-1]}')
  with open(os.path.join(out, 'run.json')) as f:
    record = json.load(f)
  return {'wall_seconds': wall, 'segment_seconds': record['seconds'], 'written': record['written']}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=6)
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--out', help='Also write the results to this JSON file.')
  args = parser.parse_args()
  started = provenance()
  import torch
  from segment_anything import sam_model_registry
  runs = {way: [] for way in WAYS}
  with tempfile.TemporaryDirectory() as folder:
    models, images = os.path.join(folder, 'clipseg'), os.path.join(folder, 'images')
    save_random_clipseg(models)
    sam = os.path.join(folder, 'sam_vit_b_random.pth')
    torch.manual_seed(0)
    torch.save(sam_model_registry['vit_b'](checkpoint=None).state_dict(), sam)
    os.makedirs(images)
    rng = np.random.default_rng(0)
    for k in range(args.images):
      Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(os.path.join(images, f'{k}.jpg'))
    for round_ in range(args.rounds):  # Alternated: local, ray 1, ray 2, local, ...
      for k, way in enumerate(WAYS):
        runs[way].append(run(way, images, models, sam, os.path.join(folder, f'out-{round_}-{k}')))
        print(way, runs[way][-1], flush=True)
  medians = {way: {'images_per_s_whole_command': round(args.images / statistics.median(r['wall_seconds'] for r in rs),
                                                       3),
                   'images_per_s_segmenting': round(args.images / statistics.median(r['segment_seconds'] for r in rs),
                                                    3)}
             for way, rs in runs.items()}
  print(json.dumps(medians, indent=1))
  if args.out:
    write_record(args.out, started, images=args.images, size='640x480', models='CLIPSeg rd64-refined + SAM ViT-B, '
                 'random weights', medians=medians, runs=runs)


if __name__ == '__main__':
  main()
