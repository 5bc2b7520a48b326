"""ViT weights between vit_jax and PyTorch's timm (both ways), and from Google's ViT `.npz` files.

    model = create_model('deit_base', num_classes=10, image_size=224, patch_size=16)
    notes = load_file(model, 'ViT-B_16.npz')             # or .safetensors / .pth (timm); load_timm_state_dict(model, sd)
    export_timm(model, 'model.safetensors')              # timm loads it: VisionTransformer(**timm_kwargs(model.cfg))

    python -m vit_jax.convert WORKDIR OUT.safetensors   # a run's best checkpoint, for timm

Each format is a table of (their key, our path, layout) rows that must
consume every source key and fill every parameter; anything else is an
error naming the key. On import, a position embedding for another grid is
resampled (bicubic, as timm does) and a head for another class count is left
at its initialisation (a new head, for fine-tuning); the returned notes say so.
"""

from __future__ import annotations

import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vit_jax.files import atomic_write
from vit_jax.models import ViT, ViTConfig

# Layouts: ours from theirs, theirs from ours.
LAYOUTS = {
    'same': (lambda w: w, lambda w: w),
    'linear': (lambda w: w.T, lambda w: w.T),  # torch Linear [out, in] <-> [in, out]
    'conv': (lambda w: w.transpose(2, 3, 1, 0), lambda w: w.transpose(3, 2, 0, 1)),  # [D, C, p, p] <-> [p, p, C, D]
}

_BLOCK = [(f'blocks.{{i}}.{a}.{t}', f'blocks/{{i}}/{a.replace(".", "/")}/{o}', layout)
          for a in ('norm1', 'norm2') for t, o, layout in (('weight', 'scale', 'same'), ('bias', 'bias', 'same'))]
_BLOCK += [(f'blocks.{{i}}.{a}.{t}', f'blocks/{{i}}/{a.replace(".", "/")}/{o}', layout)
           for a in ('attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2')
           for t, o, layout in (('weight', 'kernel', 'linear'), ('bias', 'bias', 'same'))]
TIMM = [
    ('cls_token', 'cls_token', 'same'), ('dist_token', 'dist_token', 'same'), ('pos_embed', 'pos_embed', 'same'),
    ('patch_embed.proj.weight', 'stem/proj/kernel', 'conv'), ('patch_embed.proj.bias', 'stem/proj/bias', 'same'),
    *_BLOCK,
    ('blocks.{i}.ls1.gamma', 'blocks/{i}/ls1/gamma', 'same'), ('blocks.{i}.ls2.gamma', 'blocks/{i}/ls2/gamma', 'same'),
    ('norm.weight', 'norm/scale', 'same'), ('norm.bias', 'norm/bias', 'same'),
    ('fc_norm.weight', 'norm/scale', 'same'), ('fc_norm.bias', 'norm/bias', 'same'),  # After mean pooling.
    ('head.weight', 'head/kernel', 'linear'), ('head.bias', 'head/bias', 'same'),
    ('head_dist.weight', 'head_dist/kernel', 'linear'), ('head_dist.bias', 'head_dist/bias', 'same'),
]

# Google's ViT (google-research/vision_transformer, big_vision) .npz; q/k/v are fused into 'qkv' first.
_ENC = 'Transformer/encoderblock_{i}'
GOOGLE = [
    ('cls', 'cls_token', 'same'), ('Transformer/posembed_input/pos_embedding', 'pos_embed', 'same'),
    ('embedding/kernel', 'stem/proj/kernel', 'same'), ('embedding/bias', 'stem/proj/bias', 'same'),
    (f'{_ENC}/LayerNorm_0/scale', 'blocks/{i}/norm1/scale', 'same'),
    (f'{_ENC}/LayerNorm_0/bias', 'blocks/{i}/norm1/bias', 'same'),
    (f'{_ENC}/LayerNorm_2/scale', 'blocks/{i}/norm2/scale', 'same'),
    (f'{_ENC}/LayerNorm_2/bias', 'blocks/{i}/norm2/bias', 'same'),
    (f'{_ENC}/MultiHeadDotProductAttention_1/qkv/kernel', 'blocks/{i}/attn/qkv/kernel', 'same'),
    (f'{_ENC}/MultiHeadDotProductAttention_1/qkv/bias', 'blocks/{i}/attn/qkv/bias', 'same'),
    (f'{_ENC}/MultiHeadDotProductAttention_1/out/kernel', 'blocks/{i}/attn/proj/kernel', 'same'),
    (f'{_ENC}/MultiHeadDotProductAttention_1/out/bias', 'blocks/{i}/attn/proj/bias', 'same'),
    (f'{_ENC}/MlpBlock_3/Dense_0/kernel', 'blocks/{i}/mlp/fc1/kernel', 'same'),
    (f'{_ENC}/MlpBlock_3/Dense_0/bias', 'blocks/{i}/mlp/fc1/bias', 'same'),
    (f'{_ENC}/MlpBlock_3/Dense_1/kernel', 'blocks/{i}/mlp/fc2/kernel', 'same'),
    (f'{_ENC}/MlpBlock_3/Dense_1/bias', 'blocks/{i}/mlp/fc2/bias', 'same'),
    ('Transformer/encoder_norm/scale', 'norm/scale', 'same'), ('Transformer/encoder_norm/bias', 'norm/bias', 'same'),
    ('head/kernel', 'head/kernel', 'same'), ('head/bias', 'head/bias', 'same'),
]


def _pattern(template: str) -> re.Pattern:
  return re.compile(re.escape(template).replace(r'\{i\}', r'(?P<i>\d+)'))


def _translate(key: str, table, source: int, what: str) -> tuple[str, str]:
  """(the other side's name, layout) for `key` of side `source` (0 theirs, 1 ours)."""
  for row in table:
    match = _pattern(row[source]).fullmatch(key)
    if match:
      return row[1 - source].replace('{i}', match.groupdict().get('i') or ''), row[2]
  raise KeyError(f'{what} key {key!r} has no counterpart in vit_jax.models.ViT.')


def _fuse_qkv(arrays: dict) -> dict:
  """Google's per-head q, k, v [D, H, Dh] (bias [H, Dh]) and out [H, Dh, D] as our 2-D layout."""
  out = {}
  for key, value in arrays.items():
    head = re.fullmatch(r'(.*/MultiHeadDotProductAttention_1)/(query|key|value|out)/(kernel|bias)', key)
    if not head:
      out[key] = value
    elif head[2] == 'out':
      out[key] = value.reshape(-1, value.shape[-1]) if head[3] == 'kernel' else value
    elif head[2] == 'query':
      parts = [arrays[f'{head[1]}/{n}/{head[3]}'] for n in ('query', 'key', 'value')]
      out[f'{head[1]}/qkv/{head[3]}'] = np.concatenate([p.reshape(p.shape[0], -1) if head[3] == 'kernel'
                                                        else p.reshape(-1) for p in parts], -1)
  return out


def _resample_grid(pos: np.ndarray, prefix: int, shape: tuple) -> np.ndarray:
  """A position embedding [1, prefix + n * n, D] on the grid of `shape` (bicubic)."""
  old_side, new_side = int(round((pos.shape[1] - prefix) ** 0.5)), int(round((shape[1] - prefix) ** 0.5))
  grid = pos[:, prefix:].reshape(1, old_side, old_side, -1)
  grid = jax.image.resize(jnp.asarray(grid), (1, new_side, new_side, grid.shape[-1]), 'bicubic')
  return np.concatenate([pos[:, :prefix], np.asarray(grid).reshape(1, new_side * new_side, -1)], 1)


def _load(model: ViT, arrays: dict, table, what: str) -> list[str]:
  params = nnx.state(model, nnx.Param)
  flat = {'/'.join(str(k) for k in path): var for path, var in nnx.to_flat_state(params)}
  filled, notes = set(), set()
  for key, tensor in arrays.items():
    path, layout = _translate(key, table, 0, what)
    value = LAYOUTS[layout][0](np.asarray(tensor, np.float32))
    if path not in flat:
      raise KeyError(f'{what} key {key!r} maps to {path!r}, which this model does not have.')
    shape = flat[path].shape
    if value.shape != shape and path == 'pos_embed' and value.shape[2] == shape[2]:
      value = _resample_grid(value, model.num_prefix_tokens, shape)
      notes.add(f'pos_embed resampled from {tensor.shape[1]} to {shape[1]} tokens')
    elif value.shape != shape and path.startswith('head'):
      notes.add(f'{path.split("/")[0]}: new ({value.shape[-1]} -> {shape[-1]} classes), left at its initialisation')
      filled.add(path)
      continue
    if value.shape != shape:
      raise ValueError(f'{what} key {key!r}: shape {value.shape} does not fit {path!r} {shape}.')
    flat[path].set_value(jnp.asarray(value, flat[path].dtype))
    filled.add(path)
  missing = sorted(set(flat) - filled)
  if missing:
    raise KeyError(f'the {what} weights have nothing for {missing[:5]}{"..." if len(missing) > 5 else ""}.')
  nnx.update(model, params)
  return sorted(notes)


def load_timm_state_dict(model: ViT, state_dict) -> list[str]:
  """Copies a timm VisionTransformer (or VisionTransformerDistilled) state
  dict into `model` in place; returns notes on resampled or new parts."""
  arrays = {k: v.detach().cpu().float().numpy() if hasattr(v, 'detach') else np.asarray(v)
            for k, v in state_dict.items()}
  return _load(model, arrays, TIMM, 'timm')


def load_google_npz(model: ViT, arrays) -> list[str]:
  """Copies a Google ViT checkpoint (`np.load('ViT-B_16.npz')`: '/'-joined
  flax names) into `model` in place; returns notes as load_timm_state_dict.
  Those models were trained with tanh-approximated GELU; ours is exact (timm's
  choice for the same weights): logits move slightly, fine-tuning absorbs it."""
  arrays = dict(arrays)
  for prefix in ('opt/target/', 'params/'):  # Training-state and big_vision-style files.
    if arrays and all(k.startswith(prefix) for k in arrays):
      arrays = {k[len(prefix):]: v for k, v in arrays.items()}
  return _load(model, _fuse_qkv(arrays), GOOGLE, 'Google ViT')


def load_file(model: ViT, path: str) -> list[str]:
  """Weights from a file into `model`: .npz (Google ViT), .safetensors or
  .pth/.pt/.bin (a timm state dict); one-line errors for anything else."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no weights file {path!r}; download it where there is network and give its path.')
  try:
    if path.endswith('.npz'):
      with np.load(path) as arrays:
        return load_google_npz(model, {k: arrays[k] for k in arrays.files})
    if path.endswith('.safetensors'):
      from safetensors.numpy import load_file as load_safetensors
      return load_timm_state_dict(model, load_safetensors(path))
    import torch
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
    return load_timm_state_dict(model, state_dict.get('model', state_dict) if isinstance(state_dict, dict) else {})
  except (KeyError, ValueError) as e:
    raise ValueError(f'{path!r}: {str(e).strip(chr(39))}') from None
  except Exception as e:  # A damaged file: each library has its own errors.
    raise ValueError(f'{path!r} cannot be read as weights ({type(e).__name__}: {str(e).splitlines()[0][:150]}).') from None


def timm_kwargs(cfg: ViTConfig) -> dict:
  """Arguments of timm's VisionTransformer (VisionTransformerDistilled with a
  distillation token) for the same model."""
  if cfg.stem != 'patch':
    raise ValueError(f"timm's VisionTransformer has a patch stem; this model's stem is {cfg.stem!r}.")
  return dict(img_size=cfg.image_size, patch_size=cfg.patch_size, num_classes=cfg.num_classes, embed_dim=cfg.dim,
              depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=(cfg.mlp_dim or 4 * cfg.dim) / cfg.dim,
              qkv_bias=cfg.qkv_bias, init_values=cfg.layerscale_init,
              global_pool='avg' if cfg.pool == 'mean' else 'token', class_token=cfg.pool == 'cls')


def timm_state_dict(model: ViT) -> dict[str, np.ndarray]:
  """The model's weights under timm's names and layouts."""
  if model.cfg.stem != 'patch':
    timm_kwargs(model.cfg)  # Raises, naming the stem.
  out = {}
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    ours = '/'.join(str(k) for k in path)
    key, layout = _translate(ours, [row for row in TIMM if not row[0].startswith('fc_norm')], 1, 'vit_jax')
    if key.startswith('norm.') and model.cfg.pool == 'mean':
      key = 'fc_' + key
    out[key] = np.ascontiguousarray(LAYOUTS[layout][1](np.asarray(var[...], np.float32)))
  return out


def export_timm(model: ViT, path: str) -> None:
  """Writes the model as a timm state dict (.safetensors), atomically:
  `VisionTransformer(**timm_kwargs(model.cfg)).load_state_dict(safetensors.torch.load_file(path))`."""
  from safetensors.numpy import save
  atomic_write(path, save(timm_state_dict(model), metadata={'timm_kwargs': repr(timm_kwargs(model.cfg))}))


def main(argv: list[str]) -> int:
  """python -m vit_jax.convert WORKDIR OUT.safetensors: a run's best checkpoint for timm."""
  if len(argv) != 2 or not argv[1].endswith('.safetensors'):
    print('usage: python -m vit_jax.convert WORKDIR OUT.safetensors', file=sys.stderr)
    return 2
  from absl import logging

  from vit_jax.training.checkpoint import model_of_run
  logging.set_verbosity(logging.ERROR)
  try:
    model, _ = model_of_run(argv[0])
    export_timm(model, argv[1])
  except FileNotFoundError as e:
    print(f'error: {argv[0]} holds no finished run ({e.filename or e} is missing); train it to the end first.',
          file=sys.stderr)
    return 2
  except (OSError, KeyError, ValueError, TypeError) as e:
    print(f'error: {argv[0]}: {e}', file=sys.stderr)
    return 1 if isinstance(e, OSError) else 2
  print(f'Wrote {argv[1]}: timm VisionTransformer(**{timm_kwargs(model.cfg)})')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
