"""The PyTorch reference of the CPU recipe (bench/cpu_recipe_torch.py) and the race runner (bench/cpu_race.py)."""

import inspect
import json
import os
import subprocess
import sys

import pytest

from tiny_train_config import FIXTURE
from vit_jax.training import optim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

torch = pytest.importorskip('torch')
timm = pytest.importorskip('timm')


@pytest.fixture
def recipe(monkeypatch):
  """bench/cpu_recipe_torch.py as a module; bench/ is on sys.path only meanwhile (its segment_video.py would
  shadow the command's)."""
  monkeypatch.syspath_prepend(os.path.join(ROOT, 'bench'))
  import cpu_recipe_torch
  return cpu_recipe_torch


def test_the_reference_runs_configs_cpu_quick_recipe(recipe):
  from configs import cpu_quick
  config, args = cpu_quick.get_config(), recipe.arguments([])
  assert args.batch_size == config.batch_size == config.optim.lr_base_batch_size  # So the peak lr is optim.lr.
  assert (args.lr, args.weight_decay, args.warmup_epochs, args.min_lr) == (
      config.optim.lr, config.optim.weight_decay, config.schedule.warmup_epochs, config.schedule.min_lr)
  muon_defaults = inspect.signature(optim.muon).parameters
  assert (args.muon_rms, args.ns_steps) == (config.optim.muon_rms,
                                            config.optim.get('ns_steps', muon_defaults['ns_steps'].default))
  assert (args.low_res_fraction, recipe.LOW_RES_SIZE) == (config.low_res_stage['fraction'],
                                                          config.low_res_stage['image_size'])
  assert (args.eval_every_epochs, args.val_size, args.seconds) == (config.eval_every_epochs, config.data.val_size,
                                                                    config.total_seconds)
  assert recipe.REPLAN_EVERY_STEPS == config.log_every_steps  # train.py replans at its logged steps.
  assert (recipe.CROP_PADDING, recipe.LABEL_SMOOTHING) == (config.aug.crop_padding, config.aug.label_smoothing)
  assert (recipe.MEAN, recipe.STD) == (tuple(config.data.mean), tuple(config.data.std))
  assert config.optim.name == 'muon' and config.test_time_flip and config.model.pool == 'mean'


def test_newton_schulz_in_float32_flattens_the_spectrum(recipe):
  g = torch.randn(128, 384, generator=torch.Generator().manual_seed(0))
  for matrix in (g, g.T):
    orthogonal = recipe.orthogonalize(matrix)
    singular = torch.linalg.svdvals(orthogonal)
    assert orthogonal.dtype == torch.float32 and orthogonal.shape == matrix.shape
    assert 0.5 < singular.min() and singular.max() < 1.3  # Muon's iteration: ~U V^T, singular values near 1.


def test_muon_takes_every_matrix_and_adam_the_rest_as_vit_jax_does(recipe):
  model, (muon, adam) = recipe.build(recipe.arguments([]))
  assert isinstance(muon, recipe.Muon) and type(adam) is torch.optim.Adam  # optax's Muon: no decay on Adam's part.
  in_muon = {id(p) for group in muon.param_groups for p in group['params']}
  in_adam = {id(p) for group in adam.param_groups for p in group['params']}
  assert in_muon | in_adam == {id(p) for p in model.parameters()} and not in_muon & in_adam
  assert in_muon == {id(p) for p in model.parameters() if p.ndim == 2}  # The blocks' matrices and the head's.
  split = {id(p) for group in muon.param_groups if group['parts'] == 3 for p in group['params']}
  assert split == {id(block.attn.qkv.weight) for block in model.blocks}  # q, k, v apart (vit_jax.training.optim.FUSED_MATRICES).
  assert optim.FUSED_MATRICES == {'qkv': 3}
  before = [p.detach().clone() for p in model.parameters()]
  torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3])).backward()
  for optimizer in (muon, adam):
    optimizer.step()
  assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()) if p.grad is not None)


@pytest.mark.slow
def test_race_runs_both_sides_alternated_and_records_them(tmp_path):
  out = tmp_path / 'race.json'
  run = subprocess.run([sys.executable, 'bench/cpu_race.py', f'--data={FIXTURE}', '--val-size=100', '--seconds=45',
                        '--rounds=1', f'--out={out}'], cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-3000:]
  record = json.loads(out.read_text())
  assert list(record['runs']) == ['vit_jax', 'pytorch'] and record['rounds'] == 1
  for side, (result,) in record['runs'].items():
    assert 0.0 <= result['test_accuracy'] <= 1.0 and result['steps'] >= 8, (side, result)
    assert result['train_seconds'] < 45 * 1.5, (side, result)
    assert all(result[key] > 0 for key in ('step_seconds', 'low_res_step_seconds', 'eval_seconds')), (side, result)
  assert record['medians']['pytorch']['test_accuracy'] == record['runs']['pytorch'][0]['test_accuracy']
  assert record['commit'] and record['host'] and record['date']


@pytest.mark.parametrize('arguments', [['--seconds=0'], ['--rounds=0'], ['--set=--config.total_steps=100'],
                                       ['--set=config.total_seconds=0']])
def test_race_refuses_a_budget_that_is_not_the_same_for_both_sides(arguments):
  run = subprocess.run([sys.executable, 'bench/cpu_race.py', *arguments], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
  assert run.returncode == 2 and 'Traceback' not in run.stderr
  assert 'cpu_race.py: error: ' in run.stderr.strip().splitlines()[-1]
