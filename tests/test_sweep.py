"""Ablation sweeps: grids, resumable runs, and the table and plot they write."""

import json

import pytest
from PIL import Image

from vit_jax import sweep


def test_grids_are_products_of_axes_and_paired_fields_move_together():
  assert sweep.parse_grid(['model.patch_size=2,4']) == [{'model.patch_size': 2}, {'model.patch_size': 4}]
  assert sweep.parse_grid(['model.depth+model.dim=2+64,4+32', 'aug.flip=True,False']) == [
      {'model.depth': 2, 'model.dim': 64, 'aug.flip': True}, {'model.depth': 2, 'model.dim': 64, 'aug.flip': False},
      {'model.depth': 4, 'model.dim': 32, 'aug.flip': True}, {'model.depth': 4, 'model.dim': 32, 'aug.flip': False}]
  assert sweep.parse_grid(['model.stem=patch,conv']) == [{'model.stem': 'patch'}, {'model.stem': 'conv'}]
  for bad in ('model.depth', 'model.depth=', 'model.depth+model.dim=2,4'):
    with pytest.raises(ValueError, match='--grid'):
      sweep.parse_grid([bad])


def test_run_names_are_one_folder_each_and_never_shared():
  assert sweep.run_name({'model.depth': 2, 'aug.flip': True}, 1) == 'depth-2_flip-True_seed-1'
  paths = ['runs/teacher', 'runs_teacher', '/runs/teacher', '', 'a b']
  names = [sweep.run_name({'distill.teacher_workdir': p}, 0) for p in paths]
  assert len(set(names)) == len(names)
  assert all('/' not in n and ' ' not in n for n in names)


@pytest.mark.slow  # Two trainings by train.py in their own processes: about a minute.
def test_a_sweep_of_two_tiny_runs_writes_its_table_and_plot(tmp_path, capsys):
  args = ['--config', 'tests/tiny_train_config.py', '--out', str(tmp_path), '--grid', 'model.depth=1,2',
          '--set', 'total_epochs=1', '--set', 'aug.randaugment_layers=0']
  assert sweep.main(args) == 0
  table = json.loads((tmp_path / 'table.json').read_text())
  assert [(r['model.depth'], r['runs'], r['steps']) for r in table['rows']] == [(1, 1, 9), (2, 1, 9)]
  assert all(0 <= r['test_accuracy'] <= 1 for r in table['rows'])
  assert '| model.depth | test (mean)' in (tmp_path / 'table.md').read_text()
  with Image.open(tmp_path / 'plot.png') as img:
    assert img.format == 'PNG'
  capsys.readouterr()
  assert sweep.main(args) == 0  # Again: the finished runs are kept, not trained again.
  assert 'train.py' not in capsys.readouterr().out
  assert sweep.main(['--config', 'x.py', '--out', str(tmp_path), '--grid', 'model.depth']) == 2
