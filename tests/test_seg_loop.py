"""The loop closed, end to end: synthetic photos of two shapes and two words
-> segment.py -> python -m seg_bridge.export -> train.py on the crops -> its
report; and the exported COCO file scored by python -m seg_bridge.evaluate
against the shapes' true masks."""

import json
import subprocess
import sys

import pytest

pytest.importorskip('pycocotools')

import segment  # noqa: E402
from conftest import ROOT  # noqa: E402
from seg_bridge import evaluate, export  # noqa: E402
from seg_shapes import write_coco  # noqa: E402
from test_seg_evaluate import FINDER, metrics_of, shapes  # noqa: E402, F401  (shapes: the fixture)


def test_photos_and_words_to_a_trained_vit_and_a_scored_labelling(tmp_path, shapes):  # noqa: F811
  truth = write_coco(tmp_path / 'photos', count=24)  # The photos, and (for the scoring only) their true masks.
  assert segment.main(['--prompt', 'square, disc', *FINDER, '--out', str(tmp_path / 'masks'),
                       str(tmp_path / 'photos')]) == 0
  assert export.main([str(tmp_path / 'masks'), str(tmp_path / 'dataset'), '--min-size', '8']) == 0
  crops = tmp_path / 'dataset' / 'crops'
  counts = {split: {c.name: len(list(c.iterdir())) for c in (crops / split).iterdir()} for split in ('train', 'test')}
  assert sum(sum(c.values()) for c in counts.values()) == 16 + 12  # Every square and disc, none of the patches.

  result = subprocess.run(
      [sys.executable, 'train.py', '--config', 'tests/tiny_train_config.py', f'--workdir={tmp_path / "vit"}',
       f'--config.data.source=folder:{crops}', '--config.data.image_size=16', '--config.data.val_size=4',
       '--config.batch_size=8', '--config.eval_batch_size=8', '--config.optim.lr_base_batch_size=8',
       '--config.total_epochs=3', '--config.aug.randaugment_layers=0'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads((tmp_path / 'vit' / 'report.json').read_text())
  assert report['per_class_accuracy'].keys() == {'disc', 'square'}
  assert 0.0 <= report['test_accuracy'] <= 1.0

  assert evaluate.main([truth, '--predictions', str(tmp_path / 'dataset' / 'instances.json'),
                        '--out', str(tmp_path / 'eval')]) == 0
  scored = metrics_of(tmp_path / 'eval')['configurations'][0]['metrics']
  for name in ('*', 'square', 'disc'):  # The labeller drew the true shapes, and only those.
    assert scored[name]['gIoU'] == 1.0 and scored[name]['AP'] == pytest.approx(1.0)
