"""A labelled set of synthetic photos whose right answers are known, and a
segmenter whose output is known, for the evaluation and export tests.

Photo k (64 x 80) holds a red square (10 x 10, 'square') where k % 3 != 2,
a green disc (radius 6, 'disc') where k is even, and always an orange patch
(6 x 6) that ShapeSegmenter takes for a square with confidence 0.3."""

import json
import os

import numpy as np
from PIL import Image
from scipy import ndimage

from seg_bridge.maskers.candidates import mask_boxes
from seg_bridge.types import Instance, Segmentation, per_prompt

SIZE = (64, 80)
RED, GREEN, ORANGE = (220, 30, 30), (30, 200, 30), (250, 150, 20)
CONFIDENCE = {'square': 0.9, 'disc': 0.6}  # What ShapeSegmenter gives what it finds; the orange patch: 0.3.


def photo(k: int) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
  """Photo k and its true masks {label: [bool [H, W]]}."""
  h, w = SIZE
  yy, xx = np.mgrid[:h, :w]
  image = np.full((h, w, 3), 60, np.uint8)
  square = (yy >= 5 + k % 4) & (yy < 15 + k % 4) & (xx >= 5 + 3 * (k % 15)) & (xx < 15 + 3 * (k % 15))
  truth = {'square': [], 'disc': []}
  if k % 3 != 2:
    image[square] = RED
    truth['square'].append(square)
  if k % 2 == 0:
    disc = (yy - 45) ** 2 + (xx - (20 + 2 * (k % 10))) ** 2 <= 36
    image[disc] = GREEN
    truth['disc'].append(disc)
  image[40:46, 60:66] = ORANGE
  return image, truth


def write_photos(folder, count: int = 6) -> list[str]:
  os.makedirs(folder, exist_ok=True)
  paths = []
  for k in range(count):
    paths.append(os.path.join(folder, f'p{k}.png'))
    Image.fromarray(photo(k)[0]).save(paths[-1])
  return paths


def write_coco(folder, count: int = 6) -> str:
  """photos in `folder` and folder/instances.json (polygons for squares, RLE for discs)."""
  from pycocotools import mask as mask_utils
  write_photos(folder, count)
  images, annotations, categories = [], [], [{'id': 1, 'name': 'square'}, {'id': 2, 'name': 'disc'}]
  for k in range(count):
    images.append({'id': k + 10, 'file_name': f'p{k}.png', 'height': SIZE[0], 'width': SIZE[1]})
    for cid, label in ((1, 'square'), (2, 'disc')):
      for mask in photo(k)[1][label]:
        if label == 'square':
          x0, y0, x1, y1 = mask_boxes(mask).tolist()
          segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        else:
          rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
          segmentation = {'size': rle['size'], 'counts': rle['counts'].decode()}
        annotations.append({'id': len(annotations) + 1, 'image_id': k + 10, 'category_id': cid,
                            'segmentation': segmentation, 'iscrowd': 0})
  path = os.path.join(folder, 'instances.json')
  with open(path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
  return path


def write_folder(folder, count: int = 6) -> str:
  """The same set as a folder: p0.png, p0/square.png, p0/disc/0.png ..."""
  os.makedirs(folder, exist_ok=True)
  for k in range(count):
    image, truth = photo(k)
    Image.fromarray(image).save(os.path.join(folder, f'p{k}.png'))
    os.makedirs(os.path.join(folder, f'p{k}', 'disc'), exist_ok=True)
    if truth['square']:
      Image.fromarray(truth['square'][0].astype(np.uint8) * 255).save(os.path.join(folder, f'p{k}', 'square.png'))
    for j, mask in enumerate(truth['disc']):
      Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(folder, f'p{k}', 'disc', f'{j}.png'))
  return str(folder)


class ShapeSegmenter:
  """Finds each prompt's shapes by colour (squares: red, and the orange
  patch at 0.3; discs: green), keeping those at --min-score or above."""

  def __init__(self, min_score=0.35, max_per_prompt=16):
    self.min_score, self.calls = min_score, 0

  def check_prompts(self, prompts):
    pass

  def segment(self, image, prompts):
    self.calls += 1
    instances = []
    for prompt, floor in zip(prompts, per_prompt(self.min_score, prompts)):
      colours = {'square': [(RED, 0.9), (ORANGE, 0.3)], 'disc': [(GREEN, 0.6)]}.get(prompt, [])
      for colour, confidence in colours:
        parts, count = ndimage.label((image == colour).all(-1))
        for i in range(1, count + 1):
          if confidence >= floor:
            mask = parts == i
            instances.append(Instance(prompt, mask, confidence, mask_boxes(mask)))
    instances.sort(key=lambda inst: inst.score, reverse=True)
    return Segmentation(list(prompts), instances, np.zeros((len(prompts), *image.shape[:2]), np.float32))
