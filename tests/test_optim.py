"""Optimizer pieces: which weights decay, and the learning-rate schedules."""

import numpy as np
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


def test_warmup_cosine_schedule_shape():
  schedule = optim.learning_rate_schedule(peak_lr=1e-3, total_steps=100, warmup_steps=10, decay_type='cosine',
                                          min_lr=1e-5)
  lrs = np.array([schedule(s) for s in range(101)])
  assert lrs[0] == 0 and lrs[10] == pytest.approx(1e-3)
  assert np.all(np.diff(lrs[:11]) > 0) and np.all(np.diff(lrs[10:]) <= 0)
  assert lrs[100] == pytest.approx(1e-5)


def test_onecycle_schedule_shape():
  schedule = optim.learning_rate_schedule(peak_lr=1e-3, total_steps=100, warmup_steps=30, decay_type='onecycle')
  lrs = np.array([schedule(s) for s in range(101)])
  assert np.argmax(lrs) == 30 and lrs.max() == pytest.approx(1e-3)
  assert lrs[0] == pytest.approx(1e-3 / 25) and lrs[100] < 1e-7


def test_unknown_schedule_is_an_error():
  with pytest.raises(ValueError, match='decay_type'):
    optim.learning_rate_schedule(peak_lr=1.0, total_steps=10, warmup_steps=1, decay_type='linear')

