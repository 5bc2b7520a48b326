"""Optimizers by name, which weights decay, and the learning-rate schedules."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from conftest import ROOT
from vit_jax.training import optim
from vit_jax.models import ViT, ViTConfig


def test_weight_decay_only_on_matrices_and_kernels():
  model = ViT(ViTConfig(dim=32, depth=1, num_heads=2, layerscale_init=1e-4, distillation_token=True),
              rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  mask = {'/'.join(map(str, path)): bool(v.get_value() if isinstance(v, nnx.Variable) else v)
          for path, v in nnx.to_flat_state(optim.decay_mask(params))}
  decayed = sorted(k for k, v in mask.items() if v)
  assert decayed == ['blocks/0/attn/proj/kernel', 'blocks/0/attn/qkv/kernel', 'blocks/0/mlp/fc1/kernel',
                     'blocks/0/mlp/fc2/kernel', 'head/kernel', 'head_dist/kernel', 'stem/proj/kernel']


def lrs(total_steps=100, **kwargs):
  return np.array(jax.vmap(lambda s: optim.learning_rate(s, jnp.int32(total_steps), **kwargs))(jnp.arange(101)))


def test_warmup_cosine_schedule_is_optax_s():
  lrs_ = lrs(peak_lr=1e-3, warmup_steps=10, decay_type='cosine', min_lr=1e-5)
  expected = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100, 1e-5)
  np.testing.assert_allclose(lrs_, [expected(s) for s in range(101)], rtol=1e-5, atol=1e-9)
  assert lrs_[0] == 0 and lrs_[10] == pytest.approx(1e-3) and lrs_[100] == pytest.approx(1e-5)


def test_onecycle_schedule_is_optax_s():
  lrs_ = lrs(peak_lr=1e-3, warmup_steps=30, decay_type='onecycle')
  expected = optax.cosine_onecycle_schedule(100, 1e-3, pct_start=0.3)
  np.testing.assert_allclose(lrs_, [expected(s) for s in range(101)], rtol=1e-4, atol=1e-10)
  assert np.argmax(lrs_) == 30 and lrs_[0] == pytest.approx(1e-3 / 25, rel=1e-5)


def test_a_longer_plan_stretches_the_decay_not_the_warmup():
  short, long = (lrs(total, peak_lr=1.0, warmup_steps=10, decay_type='cosine') for total in (50, 100))
  np.testing.assert_array_equal(short[:11], long[:11])
  assert short[50] == pytest.approx(0.0, abs=1e-6) and long[50] > 0.5


def test_unknown_schedule_is_an_error():
  with pytest.raises(ValueError, match='decay_type'):
    optim.learning_rate(0, 10, peak_lr=1.0, warmup_steps=1, decay_type='linear')



def test_optimizers_are_chosen_by_name_with_their_fields():
  config = ml_collections.ConfigDict(dict(name='sgd', lr=0.1, weight_decay=0.0, momentum=0.5, nesterov=False))
  tx = optim.create(config)  # lr is the train loop's, not the optimizer's.
  params = {'w': jnp.ones((2, 2))}
  state = tx.init(params)
  first, state = tx.update({'w': jnp.full((2, 2), 2.0)}, state, params)
  second, _ = tx.update({'w': jnp.full((2, 2), 2.0)}, state, params)
  np.testing.assert_allclose(second['w'], 2.0 + 0.5 * 2.0)  # Heavy-ball momentum, for a learning rate of 1.
  with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
    optim.create(ml_collections.ConfigDict(dict(name='lion', weight_decay=0.0)))


@pytest.mark.parametrize('name, lr', [('adamw', 1e-2), ('sgd', 5e-2), ('muon', 3e-2)])
def test_every_optimizer_descends(name, lr):  # The step applies -lr * update: each must point downhill.
  model = ViT(ViTConfig(dim=32, depth=1, num_heads=2, num_classes=3), rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  tx = optim.create(ml_collections.ConfigDict(dict(name=name, weight_decay=0.05)))
  x = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
  y = jnp.arange(8) % 3

  def loss(params):
    return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, params)(x), y).mean()

  @jax.jit
  def step(params, opt_state):
    updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
    return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state

  opt_state, start = tx.init(params), loss(params)
  for _ in range(20):
    params, opt_state = step(params, opt_state)
  assert loss(params) < 0.97 * start
  assert set(optim.OPTIMIZERS) == {'adamw', 'sgd', 'muon'}  # Each one is tested here.


def test_muon_rms_scales_the_matrices_updates_only():
  params = {'w': jax.random.normal(jax.random.key(0), (8, 16)), 'b': jnp.ones(16)}
  grads = {'w': jax.random.normal(jax.random.key(1), (8, 16)), 'b': jnp.full(16, 0.5)}

  def update(**options):
    tx = optim.create(ml_collections.ConfigDict(dict(name='muon', weight_decay=0.0, **options)))
    return tx.update(grads, tx.init(params), params)[0]

  base, doubled, fewer_iterations = update(), update(muon_rms=0.4), update(ns_steps=2)
  np.testing.assert_allclose(doubled['w'], 2 * base['w'], rtol=1e-5)
  np.testing.assert_allclose(doubled['b'], base['b'])  # Adam's.
  rms = float(jnp.sqrt(jnp.mean(base['w'] ** 2)))
  assert 0.1 < rms < 0.3  # ~0.2: AdamW's update RMS (the direction; the step multiplies by -lr).
  assert not np.allclose(fewer_iterations['w'], base['w'], rtol=1e-2)


def is_qkv(path) -> bool:
  return any(getattr(p, 'key', None) == 'qkv' for p in path)


def muon_reference(**options):
  """optax's Muon as vit_jax.training.optim.muon composes it, on the matrices one by one, a qkv kernel [D, 3D] given as
  [D, 3, D] (`qkv_apart`): optax orthogonalizes along its batch axis 1, q, k and v apart."""
  def dimension_numbers(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, p: optax.contrib.MuonDimensionNumbers(0, 2) if is_qkv(path) and p.ndim == 3
        else optax.contrib.MuonDimensionNumbers(0, 1) if p.ndim == 2 else None, params)
  return optax.chain(optax.contrib.muon(1.0, weight_decay_mask=optim.decay_mask,
                                        muon_weight_dimension_numbers=dimension_numbers, **options),
                     optax.scale(-1.0))


def qkv_apart(tree, inverse: bool = False):
  """Each qkv kernel [D, 3D] as [D, 3, D] (or back)."""
  def reshape(path, p):
    if not is_qkv(path) or p.ndim == 1:
      return p
    return p.reshape(p.shape[0], -1) if inverse else p.reshape(p.shape[0], 3, -1)
  return jax.tree_util.tree_map_with_path(reshape, tree)


@jax.enable_x64(True)
def test_muon_on_stacked_matrices_gives_optax_muon_updates():
  # Same-shape matrices stacked (so that devices can split Muon's work) change no update, step after step; the
  # qkv kernel is orthogonalized as three matrices. In float64: in float32 the two sum in different orders, and
  # Newton-Schulz makes that ~1e-6 apart, by a margin that moves with the CPU's instruction set.
  model = ViT(ViTConfig(dim=32, depth=3, num_heads=2, num_classes=3, layerscale_init=1e-4), rngs=nnx.Rngs(0))
  params = jax.tree.map(lambda p: p.astype(jnp.float64), nnx.state(model, nnx.Param))
  tx = optim.create(ml_collections.ConfigDict(dict(name='muon', weight_decay=0.05, muon_rms=0.6, ns_steps=4)))
  reference = muon_reference(weight_decay=0.05, consistent_rms=0.6, ns_steps=4)
  state, reference_state = tx.init(params), reference.init(qkv_apart(params))
  for seed in range(3):
    grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(seed), p.shape, p.dtype), params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    expected, reference_state = reference.update(qkv_apart(grads), reference_state, qkv_apart(params))
    jax.tree.map(lambda u, e: np.testing.assert_allclose(u, e, rtol=1e-10, atol=1e-12),
                 updates, qkv_apart(expected, inverse=True))
    params = optax.apply_updates(params, jax.tree.map(lambda u: -0.01 * u, updates))


def test_muon_orthogonalizes_q_k_and_v_apart():
  # Each of the three [D, D] parts of an update of the qkv kernel is ~orthogonal (singular values near one,
  # times Muon's scale), which the fused [D, 3D] matrix orthogonalized whole would not make them.
  model = ViT(ViTConfig(dim=32, depth=1, num_heads=2, num_classes=3), rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(0), p.shape), params)
  tx = optim.create(ml_collections.ConfigDict(dict(name='muon', weight_decay=0.0, muon_rms=1.0)))
  qkv = tx.update(grads, tx.init(params), params)[0]['blocks'][0]['attn']['qkv']['kernel'][...]
  for part in np.split(np.asarray(qkv), 3, axis=1):
    singular = np.linalg.svd(part / np.sqrt(32), compute_uv=False)
    assert 0.5 < singular.min() and singular.max() < 1.3


SPLIT_SCRIPT = """
import json, os
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'
import jax, jax.numpy as jnp, ml_collections, numpy as np
from flax import nnx
from vit_jax.training import optim, steps
from vit_jax.models import ViT, ViTConfig
mesh = steps.make_mesh()
params = jax.device_put(nnx.state(ViT(ViTConfig(dim=32, depth=3, num_heads=2), rngs=nnx.Rngs(0)), nnx.Param),
                        steps.replicated(mesh))
grads = jax.tree.map(lambda p: jnp.cos(p) + 0.1, params)
config = ml_collections.ConfigDict(dict(name='muon', weight_decay=0.05))
result = {}
for name, tx in (('split', optim.create(config, mesh)), ('whole', optim.create(config))):
  update = jax.jit(tx.update, out_shardings=steps.replicated(mesh))
  updates = update(grads, tx.init(params), params)[0]
  result[name] = {'all_gathers': update.lower(grads, tx.init(params), params).compile().as_text().count('all-gather('),
                  'updates': [np.asarray(u).tolist() for u in jax.tree.leaves(updates)]}
print(json.dumps(result))
"""


def test_muon_splits_its_matrices_over_the_devices():
  # With the train step's mesh each device orthogonalizes a share of the matrices, then they are gathered.
  out = subprocess.run([sys.executable, '-c', SPLIT_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result['split']['all_gathers'] > 0 and result['whole']['all_gathers'] == 0
  for split, whole in zip(result['split']['updates'], result['whole']['updates'], strict=True):
    np.testing.assert_allclose(split, whole, rtol=1e-4, atol=3e-5)  # Float32 Newton-Schulz, batched.
