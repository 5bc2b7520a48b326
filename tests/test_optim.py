"""Optimizer pieces: which weights decay, and the learning-rate schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from vit_jax import optim
from vit_jax.models import ViT, ViTConfig


def test_weight_decay_only_on_matrices_and_kernels():
  model = ViT(ViTConfig(dim=32, depth=1, num_heads=2, layerscale_init=1e-4, distillation_token=True),
              rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  mask = {'/'.join(map(str, path)): bool(v.value if hasattr(v, 'value') else v)
          for path, v in nnx.to_flat_state(optim.decay_mask(params))}
  decayed = sorted(k for k, v in mask.items() if v)
  assert decayed == ['blocks/0/attn/proj/kernel', 'blocks/0/attn/qkv/kernel', 'blocks/0/mlp/fc1/kernel',
                     'blocks/0/mlp/fc2/kernel', 'head/kernel', 'head_dist/kernel', 'patch_embed/kernel']


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

