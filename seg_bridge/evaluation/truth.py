r"""Labelled images: the ground truth an evaluation scores against.

Two layouts are read:

  COCO instances (what CVAT, Label Studio and Roboflow export):
      instances.json    images (file_name relative to --images, by default
                        the file's own folder), categories, annotations with
                        polygons or RLE masks; iscrowd 1 marks a crowd region,
                        which the metrics ignore as COCO and SAM 3 do
  A folder:
      DIR/NAME.jpg                 the image (any format vit_jax.images reads)
      DIR/NAME/LABEL.png           one instance of LABEL: a black/white mask
      DIR/NAME/LABEL/K.png         several instances of LABEL, one PNG each
      (no DIR/NAME/ folder, or no LABEL in it: LABEL is not in that image)

The prompts are the category names (or the folder names), renamed where a
mapping says so ({"sports ball": "ball"}). Every prompt is looked for in
every image: an image without a label's masks is a negative for it. Masks
are held as COCO RLE (pycocotools), a few bytes per mask.

Problems with one image (missing, unreadable, a mask of another size) skip
that image and are listed; a file that is not this kind of ground truth
raises TruthError (one line).
"""

from __future__ import annotations

import dataclasses
import json
import os


from seg_bridge.outputs import coco_rle
from vit_jax.images import IMAGE_SUFFIXES, load_image


class TruthError(ValueError):
  """The ground truth cannot be read at all; the message says why."""


@dataclasses.dataclass(frozen=True)
class LabelledImage:
  name: str  # Unique in the set: the COCO file_name, or the folder format's NAME.
  path: str  # The image file.
  size: tuple[int, int]  # (H, W)
  masks: dict[str, list[dict]]  # prompt -> its instances as COCO RLE; absent or [] where not in the image.
  crowd: dict[str, list[dict]] = dataclasses.field(default_factory=dict)  # prompt -> its crowd regions (COCO RLE).


@dataclasses.dataclass(frozen=True)
class Truth:
  prompts: list[str]  # Sorted.
  images: list[LabelledImage]  # The usable ones, in the file's order.
  skipped: list[str]  # One line per image left out, with why.
  notes: list[str]  # Lines worth saying that skip nothing (an empty category).
  coco_images: dict[int, str] = dataclasses.field(default_factory=dict)  # COCO: image id -> name (usable ones).
  coco_categories: dict[int, str] = dataclasses.field(default_factory=dict)  # COCO: category id -> prompt.


def as_rle(segmentation, height: int, width: int) -> dict:
  """A COCO annotation's segmentation (polygons, uncompressed or compressed
  RLE) -> compressed RLE; ValueError where it does not fit an H x W image."""
  from pycocotools import mask as mask_utils
  if isinstance(segmentation, list):  # Polygons: [[x0, y0, x1, y1, ...], ...]
    if not segmentation or not all(isinstance(p, list) and len(p) >= 6 for p in segmentation):
      raise ValueError('a polygon needs at least three points')
    return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
  if not isinstance(segmentation, dict) or 'counts' not in segmentation or 'size' not in segmentation:
    raise ValueError('the segmentation is neither polygons nor RLE')
  if [int(s) for s in segmentation['size']] != [height, width]:
    raise ValueError(f'its mask is {segmentation["size"][1]}x{segmentation["size"][0]} pixels, the image '
                     f'{width}x{height}')
  if isinstance(segmentation['counts'], list):
    return mask_utils.frPyObjects(segmentation, height, width)
  counts = segmentation['counts']
  return {'size': [height, width], 'counts': counts.encode() if isinstance(counts, str) else counts}


def read_json(path: str, name: str, error: type[ValueError]):
  """The JSON value in the file; `error` saying `name` cannot be read, and why, otherwise."""
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise error(f'{name} cannot be read as JSON ({getattr(e, "strerror", None) or e}).') from None


def read_names(path: str | None) -> dict[str, str]:
  """A mapping file {"category": "prompt"} (JSON); {} without one."""
  if path is None:
    return {}
  names = read_json(path, f'--names {path!r}', TruthError)
  if not (isinstance(names, dict) and all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                          for k, v in names.items())):
    raise TruthError(f'--names {path!r} is not a JSON object of category -> prompt, e.g. {{"sports ball": "ball"}}.')
  return {k: v.strip() for k, v in names.items()}


def read_truth(path: str, images: str | None = None, names: dict[str, str] | None = None) -> Truth:
  """The ground truth at `path`: a COCO instances .json, or a folder."""
  names = names or {}
  if os.path.isdir(path):
    return _read_folder(path, names)
  if not os.path.isfile(path):
    raise TruthError(f'{path!r} is neither a COCO instances file nor a folder of labelled images.')
  return _read_coco(path, images or os.path.dirname(os.path.abspath(path)), names)


def load_coco(path: str) -> dict:
  data = read_json(path, repr(path), TruthError)
  if not (isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ('images', 'annotations',
                                                                                 'categories'))):
    raise TruthError(f'{path!r} is not COCO instances (a JSON object with images, annotations and categories).')
  try:
    for record in data['images']:
      int(record['id']), str(record['file_name']), int(record['height']), int(record['width'])
    for record in data['categories']:
      int(record['id']), str(record['name'])
    for record in data['annotations']:
      int(record['image_id']), int(record['category_id']), record['segmentation']
  except (KeyError, TypeError, ValueError) as e:
    raise TruthError(f'{path!r} is not COCO instances: a record lacks {e} or has the wrong type.') from None
  return data


def _read_coco(path: str, root: str, names: dict[str, str]) -> Truth:
  data = load_coco(path)
  category = {int(c['id']): names.get(c['name'], c['name']) for c in data['categories']}
  by_image: dict[int, list[dict]] = {}
  for annotation in data['annotations']:
    by_image.setdefault(int(annotation['image_id']), []).append(annotation)
  images, skipped, ids = [], [], {}
  for record in data['images']:
    file_name, height, width = str(record['file_name']), int(record['height']), int(record['width'])
    image_path = os.path.join(root, file_name)
    masks: dict[str, list[dict]] = {}
    crowd: dict[str, list[dict]] = {}
    try:
      if not os.path.isfile(image_path):
        raise ValueError(f'the image {image_path!r} is missing')
      for annotation in by_image.get(int(record['id']), []):
        if int(annotation['category_id']) not in category:
          raise ValueError(f'an annotation names category {annotation["category_id"]}, which is not listed')
        try:
          rle = as_rle(annotation['segmentation'], height, width)
        except ValueError as e:
          raise ValueError(f'annotation {annotation.get("id")}: {e}') from None
        kind = crowd if annotation.get('iscrowd') else masks
        kind.setdefault(category[int(annotation['category_id'])], []).append(rle)
    except ValueError as e:
      skipped.append(f'{file_name!r}: {e}; left out.')
      continue
    images.append(LabelledImage(file_name, image_path, (height, width), masks, crowd))
    ids[int(record['id'])] = file_name
  truth = _truth(sorted(set(category.values())), images, skipped, path)
  return dataclasses.replace(truth, coco_images=ids, coco_categories=category)


def _read_mask(path: str, size: tuple[int, int]) -> dict:
  mask = load_image(path).max(axis=-1) > 127  # Black and white (any channel set: palette masks too).
  if mask.shape != size:
    raise ValueError(f'the mask {os.path.basename(path)!r} is {mask.shape[1]}x{mask.shape[0]} pixels, the image '
                     f'{size[1]}x{size[0]}')
  return coco_rle(mask)


def _label_files(folder: str) -> dict[str, list[str]]:
  """DIR/NAME/'s labels and their mask files: LABEL.png, or LABEL/*.png."""
  labels = {}
  for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
    full = os.path.join(folder, entry)
    if os.path.isdir(full):
      labels.setdefault(entry, []).extend(
          os.path.join(full, n) for n in sorted(os.listdir(full)) if n.lower().endswith('.png'))
    elif entry.lower().endswith('.png'):
      labels.setdefault(os.path.splitext(entry)[0], []).append(full)
  return labels


def _read_folder(root: str, names: dict[str, str]) -> Truth:
  images, skipped, prompts = [], [], set()
  files = sorted(n for n in os.listdir(root)
                 if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(root, n)))
  if not files:
    raise TruthError(f'{root!r} holds no images; a labelled folder holds NAME.jpg and NAME/LABEL.png masks.')
  for file_name in files:
    stem, image_path = os.path.splitext(file_name)[0], os.path.join(root, file_name)
    try:
      labels = _label_files(os.path.join(root, stem))
      prompts.update(names.get(label, label) for label in labels)
      size = load_image(image_path).shape[:2]  # As decoded: EXIF rotation applied.
      masks: dict[str, list[dict]] = {}
      for label, paths in labels.items():
        masks.setdefault(names.get(label, label), []).extend(_read_mask(p, size) for p in paths)
    except (OSError, ValueError) as e:
      skipped.append(f'{file_name!r}: {getattr(e, "strerror", None) or e}; left out.')
      continue
    images.append(LabelledImage(stem, image_path, size, masks))
  return _truth(sorted(prompts), images, skipped, root)


def _truth(prompts: list[str], images: list[LabelledImage], skipped: list[str], where: str) -> Truth:
  if not prompts:
    raise TruthError(f'{where!r} names no categories: nothing to look for.')
  if not images:
    raise TruthError(f'{where!r}: none of its images can be used ({len(skipped)} left out'
                     + (f'; the first: {skipped[0]}' if skipped else '') + ').')
  notes = [f'{p!r} has no instance in any image: only its false positives can be scored (AP undefined).'
           for p in prompts if not any(image.masks.get(p) for image in images)]
  return Truth(prompts, images, skipped, notes)
