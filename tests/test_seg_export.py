"""python -m seg_bridge.export: a segment.py run (folders written by its own
OutputFolder, masks known) as COCO instances that pycocotools reads, and as
crops in train/test class folders that the data loader reads; bad runs are
one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('pycocotools')

from conftest import ROOT  # noqa: E402
from seg_bridge import export  # noqa: E402
from seg_bridge.outputs import OutputFolder  # noqa: E402
from seg_bridge.types import Instance, Segmentation  # noqa: E402


def square(h, w, top, left, side):
  mask = np.zeros((h, w), bool)
  mask[top:top + side, left:left + side] = True
  return mask


@pytest.fixture
def run(tmp_path):
  """A run over 12 photos, each with one 'square' (20 px) and, on even ones, one 'bar' (30 x 10 px)."""
  out = OutputFolder(str(tmp_path / 'run'))
  for k in range(12):
    pixels = np.full((64, 80, 3), 40 + k, np.uint8)
    path = tmp_path / 'photos' / f'p{k}.png'
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(pixels).save(path)
    instances = [Instance('square', square(64, 80, 5, 5 + k, 20), 0.9, np.array([5 + k, 5, 25 + k, 25], np.float32))]
    if k % 2 == 0:
      bar = np.zeros((64, 80), bool)
      bar[40:50, 40:70] = True
      instances.append(Instance('bar', bar, 0.7, np.array([40, 40, 70, 50], np.float32)))
    out.write(f'p{k}', str(path), {'finder': 'test'}, pixels,
              Segmentation(['square', 'bar'], instances, np.zeros((2, 64, 80), np.float32)))
  out.close()
  return tmp_path / 'run'


def test_the_coco_file_holds_every_instance_as_pycocotools_reads_it(run, tmp_path):
  from pycocotools.coco import COCO
  done = export.export(str(run), str(tmp_path / 'data'), test_share=0.25)
  assert (done['images'], done['instances'], done['categories']) == (12, 18, ['bar', 'square'])
  dataset = COCO(str(tmp_path / 'data' / 'instances.json'))
  assert len(dataset.getImgIds()) == 12 and len(dataset.getAnnIds()) == 18
  square_id = dataset.getCatIds(catNms=['square'])[0]
  first = dataset.loadAnns(dataset.getAnnIds(imgIds=[1], catIds=[square_id]))[0]
  assert first['bbox'] == [5.0, 5.0, 20.0, 20.0] and first['area'] == 400 and first['score'] == 0.9
  assert dataset.annToMask(first).sum() == 400 and dataset.annToMask(first)[5, 5] == 1
  assert not (tmp_path / 'data.partial').exists()


def test_the_crops_are_a_folder_data_set_split_by_image(run, tmp_path):
  from vit_jax import load_data
  done = export.export(str(run), str(tmp_path / 'data'), padding=0.0, min_size=8, test_share=0.25)
  test_images = {n for n in (f'p{k}' for k in range(12)) if export.split_of(n, 0.25) == 'test'}
  assert test_images and len(test_images) < 12  # Both splits drawn, all crops of an image in one.
  expected_test = sum(2 if int(n[1:]) % 2 == 0 else 1 for n in test_images)
  assert done['crops'] == {'train': 18 - expected_test, 'test': expected_test}
  splits = load_data(f'folder:{tmp_path / "data" / "crops"}', ('train', 'test'), image_size=16)
  assert splits['train'].class_names == ('bar', 'square')
  crop = Image.open(tmp_path / 'data' / 'crops' / export.split_of('p0', 0.25) / 'bar' / 'p0_1.jpg')
  assert crop.size == (30, 10)  # The bar's box itself, at padding 0.
  again = export.export(str(run), str(tmp_path / 'small'), padding=0.0, min_size=16, test_share=0.25)
  assert sum(again['crops'].values()) == 12  # The bars' 10 px side is under --min-size 16: left out.


@pytest.mark.parametrize('make,phrase,status', [
    (lambda tmp: tmp / 'nowhere', 'is not a folder', 2),
    (lambda tmp: (tmp / 'empty').mkdir() or tmp / 'empty', 'holds no image folders', 2),
    (lambda tmp: (tmp / 'half' / '.partial' / 'new' / 'p0').mkdir(parents=True) or tmp / 'half',
     'holds no image folders', 2),  # A run killed before its first image was committed.
    (lambda tmp: ((tmp / 'bad' / 'x').mkdir(parents=True), (tmp / 'bad' / 'x' / 'result.json').write_text('{"a": 1'))
     and tmp / 'bad', 'is not a result of segment.py', 2),
])
def test_what_cannot_be_exported_is_one_line(tmp_path, make, phrase, status):
  result = subprocess.run([sys.executable, '-m', 'seg_bridge.export', str(make(tmp_path)), str(tmp_path / 'out')],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == status and len(lines) == 1 and phrase in lines[0], result.stderr
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'out.partial').exists()


def test_an_image_gone_since_the_run_is_skipped_and_counted(run, tmp_path):
  (tmp_path / 'photos' / 'p3.png').unlink()
  result = subprocess.run([sys.executable, '-m', 'seg_bridge.export', str(run), str(tmp_path / 'out')], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 1 and result.stderr.count('skipped: ') == 1 and 'p3.png' in result.stderr
  assert 'Wrote' in result.stdout and json.loads((tmp_path / 'out' / 'instances.json').read_text())['images']


def test_train_py_learns_from_the_crops(run, tmp_path):
  from conftest import tiny_config
  from vit_jax import train_and_evaluate
  export.export(str(run), str(tmp_path / 'data'), padding=0.1, min_size=8, test_share=0.25)
  config = tiny_config(total_epochs=2, batch_size=4, eval_batch_size=4, **{
      'data.source': f'folder:{tmp_path / "data" / "crops"}', 'data.image_size': 32, 'data.val_size': 2,
      'aug.randaugment_layers': 0, 'optim.lr_base_batch_size': 4})
  report = train_and_evaluate(config, str(tmp_path / 'workdir'))
  assert report['steps'] == 2 * (11 // 4) and 0.0 <= report['test_accuracy'] <= 1.0
  assert json.loads((tmp_path / 'workdir' / 'report.json').read_text())['per_class_accuracy'].keys() == {'bar', 'square'}
