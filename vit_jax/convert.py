"""Weights from timm's VisionTransformer (PyTorch state dict) into `ViT`.

    model = create_model('deit_tiny', num_classes=1000, image_size=224, patch_size=16)
    load_timm_state_dict(model, timm_model.state_dict())

A table of regex -> (our path, transform) that must consume every source
key and fill every parameter, with the same shapes; anything else is an
error naming the key.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
from flax import nnx

_linear = lambda w: w.T  # torch Linear [out, in] -> [in, out]
_conv = lambda w: w.transpose(2, 3, 1, 0)  # torch Conv [D, C, p, p] -> [p, p, C, D]
_same = lambda w: w

# (timm key regex, our path template, transform). Our paths are '/'-joined.
_RULES = (
    (r'cls_token', 'cls_token', _same),
    (r'dist_token', 'dist_token', _same),
    (r'pos_embed', 'pos_embed', _same),
    (r'patch_embed\.proj\.weight', 'stem/proj/kernel', _conv),
    (r'patch_embed\.proj\.bias', 'stem/proj/bias', _same),
    (r'blocks\.(\d+)\.(norm1|norm2)\.weight', r'blocks/\1/\2/scale', _same),
    (r'blocks\.(\d+)\.(norm1|norm2)\.bias', r'blocks/\1/\2/bias', _same),
    (r'blocks\.(\d+)\.attn\.(qkv|proj)\.weight', r'blocks/\1/attn/\2/kernel', _linear),
    (r'blocks\.(\d+)\.attn\.(qkv|proj)\.bias', r'blocks/\1/attn/\2/bias', _same),
    (r'blocks\.(\d+)\.mlp\.(fc1|fc2)\.weight', r'blocks/\1/mlp/\2/kernel', _linear),
    (r'blocks\.(\d+)\.mlp\.(fc1|fc2)\.bias', r'blocks/\1/mlp/\2/bias', _same),
    (r'blocks\.(\d+)\.(ls1|ls2)\.gamma', r'blocks/\1/\2/gamma', _same),
    (r'(?:norm|fc_norm)\.weight', 'norm/scale', _same),  # fc_norm: timm's norm after mean pooling.
    (r'(?:norm|fc_norm)\.bias', 'norm/bias', _same),
    (r'(head|head_dist)\.weight', r'\1/kernel', _linear),
    (r'(head|head_dist)\.bias', r'\1/bias', _same),
)


def _our_path(key: str) -> tuple[str, callable]:
  for pattern, template, transform in _RULES:
    if re.fullmatch(pattern, key):
      return re.sub(pattern, template, key), transform
  raise KeyError(f'timm key {key!r} has no counterpart in vit_jax.models.ViT.')


def load_timm_state_dict(model: nnx.Module, state_dict) -> None:
  """Copies a timm VisionTransformer state dict into `model` in place."""
  params = nnx.state(model, nnx.Param)
  flat = {'/'.join(str(k) for k in path): var for path, var in nnx.to_flat_state(params)}
  filled = set()
  for key, tensor in state_dict.items():
    path, transform = _our_path(key)
    value = transform(np.asarray(tensor.detach().cpu().float().numpy() if hasattr(tensor, 'detach') else tensor))
    if path not in flat:
      raise KeyError(f'timm key {key!r} maps to {path!r}, which this model does not have.')
    if value.shape != flat[path].shape:
      raise ValueError(f'timm key {key!r}: shape {value.shape} does not fit {path!r} {flat[path].shape}.')
    flat[path].set_value(jnp.asarray(value, flat[path].dtype))
    filled.add(path)
  missing = sorted(set(flat) - filled)
  if missing:
    raise KeyError(f'the state dict has no weights for {missing[:5]}{"..." if len(missing) > 5 else ""}.')
  nnx.update(model, params)
