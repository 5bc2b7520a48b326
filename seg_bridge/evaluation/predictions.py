"""Predictions already made, scored without running a model again: a
segment.py --out folder, a COCO instances file with scores (what
`python -m seg_bridge.export` writes), or a COCO results list
([{image_id, category_id, segmentation, score}], what detectron2 and other
COCO evaluations read), whose ids are those of the COCO ground truth.

Each predicted image is matched to a labelled one by its file (the same file
through any path), else by its file name where that is unique. Labelled images
the predictions lack are left out and counted; predicted images without labels
are ignored.
"""

from __future__ import annotations

import collections
import os

from seg_bridge.evaluation.sweep import AS_GIVEN
from seg_bridge.evaluation.truth import Truth, TruthError, as_rle, load_coco, read_json


def _instances_of_run(path: str) -> list[tuple[str, tuple[int, int], list[dict]]]:
  from seg_bridge.export import ExportError, read_run
  try:
    records = read_run(path)
  except ExportError as e:
    raise TruthError(str(e)) from None
  return [(r['source'], tuple(r['size']), [{'label': i['label'], 'score': i['score'], 'rle': i['rle']}
                                          for i in r['instances']]) for _, r in records]


def _instances_of_results(path: str, results: list, truth: Truth) -> list[tuple[str, tuple[int, int], list[dict]]]:
  if not truth.coco_images:
    raise TruthError(f'{path!r} is a COCO results list: its image and category ids need COCO ground truth.')
  images = {image.name: image for image in truth.images}
  found = {name: [] for name in truth.coco_images.values()}
  for k, result in enumerate(results):
    try:
      name, prompt = truth.coco_images.get(int(result['image_id'])), truth.coco_categories[int(result['category_id'])]
      if name is not None:  # An image the ground truth left out, or does not have.
        height, width = images[name].size
        found[name].append({'label': prompt, 'score': float(result['score']),
                            'rle': as_rle(result['segmentation'], height, width)})
    except (KeyError, TypeError, ValueError) as e:
      raise TruthError(f'{path!r}: result {k} is not a COCO segmentation result with known ids ({e}).') from None
  return [(images[name].path, images[name].size, instances) for name, instances in found.items()]


def _instances_of_coco(path: str) -> list[tuple[str, tuple[int, int], list[dict]]]:
  data = load_coco(path)
  names = {int(c['id']): c['name'] for c in data['categories']}
  found = {int(i['id']): [] for i in data['images']}
  for annotation in data['annotations']:
    if 'score' not in annotation:
      raise TruthError(f'{path!r} has annotations without a score: ground truth, not predictions.')
    found.setdefault(int(annotation['image_id']), []).append(annotation)
  images = []
  for image in data['images']:
    height, width = int(image['height']), int(image['width'])
    try:
      instances = [{'label': names[int(a['category_id'])], 'score': float(a['score']),
                    'rle': as_rle(a['segmentation'], height, width)} for a in found[int(image['id'])]]
    except (KeyError, ValueError) as e:
      raise TruthError(f'{path!r}: image {image["file_name"]!r} has a bad annotation ({e}).') from None
    images.append((str(image['file_name']), (height, width), instances))
  return images


def read_predictions(path: str, truth: Truth) -> tuple[dict[str, dict], list[str]]:
  """{labelled image name: its candidates record (seg_bridge.evaluation.sweep)}
  and a line per labelled image the predictions lack or do not fit."""
  if os.path.isdir(path):
    predicted = _instances_of_run(path)
  else:
    results = read_json(path, repr(path), TruthError)
    predicted = (_instances_of_results(path, results, truth) if isinstance(results, list)
                 else _instances_of_coco(path))
  by_file = {os.path.realpath(source): entry for source, *entry in predicted}
  names = collections.Counter(os.path.basename(source) for source, *_ in predicted)
  by_name = {os.path.basename(s): entry for s, *entry in predicted if names[os.path.basename(s)] == 1}
  records, skipped = {}, []
  for image in truth.images:
    entry = by_file.get(os.path.realpath(image.path)) or by_name.get(os.path.basename(image.path))
    if entry is None:
      skipped.append(f'{image.name!r}: not in the predictions {path!r}; left out.')
      continue
    size, instances = entry
    if tuple(size) != tuple(image.size):
      skipped.append(f'{image.name!r}: predicted at {size[1]}x{size[0]} pixels, labelled at '
                     f'{image.size[1]}x{image.size[0]}; left out.')
      continue
    records[image.name] = {'source': image.path, 'seconds': None, 'at': {AS_GIVEN: [
        {'label': i['label'], 'confidence': i['score'], 'score': i['score'], 'rle': i['rle']} for i in instances]}}
  if not records:
    raise TruthError(f'the predictions {path!r} cover none of the labelled images.')
  return records, skipped
