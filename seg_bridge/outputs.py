"""What segment.py writes for one image, all or nothing:

    OUT/NAME_overlay.png     the image with masks, boxes and labels drawn
    OUT/NAME_mask_K.png      one black/white PNG per instance, K = 0, 1, ...
    OUT/NAME.json            prompts, and per instance: label, score, box
                             (xyxy pixels), COCO RLE of the mask

The files are written into a hidden temporary folder inside OUT and moved in
place only when all of them are complete.
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageDraw


def coco_rle(mask: np.ndarray) -> dict:
  """COCO run-length encoding of a bool [H, W] mask ({'size', 'counts'})."""
  from pycocotools import mask as mask_utils
  rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
  return {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}


def _color(k: int) -> tuple[int, int, int]:
  r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 1.0)
  return int(r * 255), int(g * 255), int(b * 255)


def overlay(image: np.ndarray, instances) -> Image.Image:
  """The picture a person wants: masks tinted, boxes and 'label score' drawn."""
  canvas = image.astype(np.float32)
  for k, inst in enumerate(instances):
    canvas[inst.mask] = 0.5 * canvas[inst.mask] + 0.5 * np.array(_color(k), np.float32)
  picture = Image.fromarray(canvas.astype(np.uint8))
  draw = ImageDraw.Draw(picture)
  width = max(1, round(max(image.shape[:2]) / 300))
  for k, inst in enumerate(instances):
    x0, y0, x1, y1 = inst.box.tolist()
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=_color(k), width=width)
    text = f'{inst.label} {inst.score:.2f}'
    left, top, right, bottom = draw.textbbox((x0, y0), text)
    draw.rectangle([left, top, right + 2, bottom + 2], fill=_color(k))
    draw.text((x0 + 1, y0 + 1), text, fill=(0, 0, 0))
  return picture


def write_results(out_dir: str, name: str, image: np.ndarray, result) -> list[str]:
  """Writes the files above for one image; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  staging = tempfile.mkdtemp(dir=out_dir, prefix=f'.{name}.')
  try:
    files = {f'{name}_overlay.png': overlay(image, result.instances)}
    for k, inst in enumerate(result.instances):
      files[f'{name}_mask_{k}.png'] = Image.fromarray(inst.mask.astype(np.uint8) * 255)
    for filename, picture in files.items():
      picture.save(os.path.join(staging, filename))
    record = {
        'image': name, 'size': list(image.shape[:2]), 'prompts': result.prompts,
        'instances': [{'label': inst.label, 'score': round(inst.score, 4), 'box': inst.box.tolist(),
                       'mask_png': f'{name}_mask_{k}.png', 'rle': coco_rle(inst.mask)}
                      for k, inst in enumerate(result.instances)],
    }
    with open(os.path.join(staging, f'{name}.json'), 'w') as f:
      json.dump(record, f, indent=1)
    for old in os.listdir(out_dir):  # Masks of an earlier run with more instances.
      if old.startswith(f'{name}_mask_') and old.endswith('.png') and old not in files:
        os.remove(os.path.join(out_dir, old))
    written = []
    for filename in sorted(os.listdir(staging)):
      target = os.path.join(out_dir, filename)
      os.replace(os.path.join(staging, filename), target)
      written.append(target)
    return written
  finally:
    shutil.rmtree(staging, ignore_errors=True)
