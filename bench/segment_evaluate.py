r"""python -m seg_bridge.evaluate on the real-size architectures with random
weights: the comparison table of CLIPSeg + SAM, Grounding DINO + SAM and
SAM 3, and what a calibration's sweep costs against one plain run.

    python bench/segment_evaluate.py --out results/segment_evaluate_cpu.json

A CHECK OF THE MECHANICS AND THE COST, NOT OF QUALITY: pretrained weights
cannot be downloaded here, so the models (CLIPSeg rd64-refined, Grounding
DINO tiny, SAM ViT-B, SAM 3 as released; saved and loaded back like Hub
copies, as bench/segment_prompts.py does) have random weights and their
masks are noise; the time does not depend on the weights. The labelled set
is --images synthetic photos (--size) with one 'dog' (a red rectangle) each
and a 'cap' (a green disc) on every other one, written as COCO instances.

Each configuration is evaluated twice, each in its own process, in turns:
plainly (its settings as given) and with --calibrate gIoU (the default grid:
19 min-scores; for CLIPSeg also 5 thresholds); seconds per image come from
the evaluations' own metrics.json. A last call scores the three calibrated
configurations side by side from their caches: that table (metrics.md) is
written next to --out as .md. With real weights, run the same commands on
your own labelled images (docs/segmentation.md).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from record import ROOT, provenance, write_record
from segment_prompts import save_random_clipseg, save_random_grounding_dino, save_random_sam3


def write_labels(folder: str, count: int, size: tuple[int, int]) -> str:
  """`count` photos with a 'dog' each and a 'cap' on every other one, and their COCO instances.json."""
  from PIL import Image
  from pycocotools import mask as mask_utils
  width, height = size
  yy, xx = np.mgrid[:height, :width]
  rng = np.random.default_rng(0)
  images, annotations = [], []
  for k in range(count):
    pixels = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    objects = [(1, (yy >= height // 4) & (yy < height // 2) & (xx >= width // 8 + 20 * k) & (xx < width // 2))]
    if k % 2 == 0:
      objects.append((2, (yy - 3 * height // 4) ** 2 + (xx - 3 * width // 4) ** 2 <= (height // 8) ** 2))
    for category, mask in objects:
      pixels[mask] = (220, 30, 30) if category == 1 else (30, 200, 30)
      rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
      annotations.append({'id': len(annotations) + 1, 'image_id': k + 1, 'category_id': category, 'iscrowd': 0,
                          'segmentation': {'size': rle['size'], 'counts': rle['counts'].decode()}})
    Image.fromarray(pixels).save(os.path.join(folder, f'photo{k}.jpg'), quality=95)
    images.append({'id': k + 1, 'file_name': f'photo{k}.jpg', 'height': height, 'width': width})
  path = os.path.join(folder, 'instances.json')
  with open(path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': [{'id': 1, 'name': 'dog'}, {'id': 2, 'name': 'cap'}]}, f)
  return path


def compact(config: dict) -> dict:
  """A configuration's metrics.json entry without its grid and PR curves (the figures stay)."""
  def plain(metrics):
    return {name: {k: v for k, v in values.items() if k != 'pr_iou50'} for name, values in metrics.items()}
  config = {**config, 'metrics': plain(config['metrics'])}
  if 'calibration' in config:
    calibration = {k: v for k, v in config['calibration'].items() if k != 'grid'}
    config['calibration'] = {**calibration, 'as_given': plain(calibration['as_given']),
                             'calibrated': plain(calibration['calibrated'])}
  return config


def evaluate(args: list[str]) -> float:
  """Runs python -m seg_bridge.evaluate ARGS in its own process; its wall seconds."""
  start = time.perf_counter()
  result = subprocess.run([sys.executable, '-m', 'seg_bridge.evaluate', *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  if result.returncode != 0:
    sys.exit(f'seg_bridge.evaluate failed ({result.returncode}):\n{result.stderr[-3000:]}')
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=4)
  parser.add_argument('--size', default='640x480', help='Photo width x height.')
  parser.add_argument('--out', required=True, help='JSON to write; the comparison table goes to the same name .md.')
  args = parser.parse_args()
  started = provenance()
  import torch
  from segment_anything import sam_model_registry
  size = tuple(map(int, args.size.split('x')))
  with tempfile.TemporaryDirectory() as folder:
    torch.manual_seed(0)
    sam = os.path.join(folder, 'sam_vit_b_random.pth')
    torch.save(sam_model_registry['vit_b'](checkpoint=None).state_dict(), sam)
    models = {name: os.path.join(folder, name) for name in ('clipseg', 'grounding-dino', 'sam3')}
    save_random_clipseg(models['clipseg'])
    save_random_grounding_dino(models['grounding-dino'], 16)
    save_random_sam3(models['sam3'], 16)
    labels = os.path.join(folder, 'labels')
    os.makedirs(labels)
    truth = write_labels(labels, args.images, size)
    configurations = {name: f'{name}=--finder {name} --finder-model {path} --device cpu'
                      + ('' if name == 'sam3' else f' --sam-checkpoint {sam}') for name, path in models.items()}
    seconds, per_image = {}, {}
    for name, flags in configurations.items():
      for way, extra in (('plain', []), ('calibrated', ['--calibrate', 'gIoU'])):  # In turns, each in its own process.
        out = os.path.join(folder, f'{way}-{name}' if way == 'plain' else 'compared')
        seconds[f'{name} {way}'] = round(evaluate([truth, '--configuration', flags, '--out', out, *extra]), 1)
        with open(os.path.join(out, 'metrics.json')) as f:
          per_image[f'{name} {way}'] = json.load(f)['configurations'][0]['seconds_per_image']
        print(f'{name} {way}: {seconds[f"{name} {way}"]} s in all, {per_image[f"{name} {way}"]} s per image', flush=True)
    compared = os.path.join(folder, 'compared')
    evaluate([truth, *[a for flags in configurations.values() for a in ('--configuration', flags)],
              '--calibrate', 'gIoU', '--out', compared])  # From the caches: no model runs again.
    with open(os.path.join(compared, 'metrics.json')) as f:
      report = json.load(f)
    with open(os.path.join(compared, 'metrics.md')) as f:
      table = f.read()
  table = table.replace(folder, '…')  # The scratch folder, deleted.
  configurations = [compact(config) for config in report['configurations']]
  sweep_cost = {name: round(per_image[f'{name} calibrated'] / per_image[f'{name} plain'], 2) for name in models}
  write_record(args.out, started, weights='random (real-size architectures): mechanics and cost, not quality',
               images=args.images, image_size=list(size), torch=torch.__version__, torch_threads=torch.get_num_threads(),
               wall_seconds=seconds, seconds_per_image=per_image, sweep_over_plain=sweep_cost,
               configurations=configurations)
  header = (f'# seg_bridge.evaluate on random-weight real-size models: mechanics and cost, NOT quality\n\n'
            f'`{started["command"]}` at {started["commit"]} on {started["host"]}, {started["date"]}.\n'
            f'Seconds per image, plain / with the calibration sweep: '
            + ', '.join(f'{n} {per_image[f"{n} plain"]} / {per_image[f"{n} calibrated"]} ({sweep_cost[n]}x)'
                        for n in models) + '.\n\n')
  from vit_jax.files import atomic_write
  atomic_write(os.path.splitext(args.out)[0] + '.md', (header + table).encode())
  print(header + table)


if __name__ == '__main__':
  sys.path.insert(0, ROOT)
  main()
