"""Where a ViT looks: attention rollout and the last layer's class-token attention.

    maps = attention_maps(model, images)    # images [B, H, W, 3] normalised -> dict of [B, h, w] maps
    save_attention_grid('attention.png', images_uint8, maps)

    python -m vit_jax.attention WORKDIR IMAGE... --out attention.png

Rollout (Abnar & Zuidema 2020): per block, the head-averaged attention plus
the identity (the residual path), rows renormalised; the product over the
blocks says how much each output token draws on each input patch. Both maps
are read from the class token's row; a mean-pooling model has none, so its
maps average the rows of all patch tokens.
"""

from __future__ import annotations

import argparse
import io
import sys

import jax.numpy as jnp
import numpy as np

from vit_jax.files import atomic_write


def rollout(weights: list) -> jnp.ndarray:
  """Attention weights of each block ([depth] of [B, H, N, N]) -> [B, N, N]."""
  joint = None
  for w in weights:
    a = w.astype(jnp.float32).mean(axis=1)  # [B, N, N]
    a = a + jnp.eye(a.shape[-1])
    a = a / a.sum(-1, keepdims=True)
    joint = a if joint is None else a @ joint
  return joint


def attention_maps(model, images) -> dict[str, np.ndarray]:
  """{'rollout', 'last_layer'}: [B, h, w] maps over the patch grid, each
  summing to 1, for normalised images [B, H, W, 3]."""
  _, intermediates = model(images, return_intermediates=True)
  weights = intermediates['attention']
  prefix = model.num_prefix_tokens
  side = int(round((weights[0].shape[-1] - prefix) ** 0.5))

  def read(a):  # [B, N, N] -> [B, h, w], from the class token's row (or the patch rows' mean).
    rows = a[:, 0, prefix:] if prefix else a[:, prefix:, prefix:].mean(1)
    rows = rows / rows.sum(-1, keepdims=True)
    return np.asarray(rows.reshape(-1, side, side))
  return {'rollout': read(rollout(weights)), 'last_layer': read(weights[-1].astype(jnp.float32).mean(1))}


def save_attention_grid(path: str, images: np.ndarray, maps: dict[str, np.ndarray], titles=None) -> None:
  """A PNG grid, written atomically: one row per image (uint8 [B, H, W, 3]):
  the image, then each map over it."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  n, names = len(images), list(maps)
  fig, axes = plt.subplots(n, 1 + len(names), figsize=(2.2 * (1 + len(names)), 2.2 * n), squeeze=False)
  for i, image in enumerate(images):
    axes[i, 0].imshow(image)
    axes[i, 0].set_title(titles[i] if titles else '', fontsize=8)
    for j, name in enumerate(names):
      axes[i, j + 1].imshow(image)
      axes[i, j + 1].imshow(maps[name][i], cmap='inferno', alpha=0.6, interpolation='bilinear',
                            extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
      if i == 0:
        axes[i, j + 1].set_title(name.replace('_', ' '), fontsize=9)
  for ax in axes.flat:
    ax.axis('off')
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
  plt.close(fig)
  atomic_write(path, buffer.getvalue())


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog='python -m vit_jax.attention', description=__doc__.split('\n')[0])
  parser.add_argument('workdir', help='a train.py work directory: its config and best checkpoint')
  parser.add_argument('images', nargs='+', help='image files or URLs, resized to the model\'s input size')
  parser.add_argument('--out', default='attention.png')
  args = parser.parse_args(argv)
  from PIL import Image

  from vit_jax.images import ImageError, load_image
  from vit_jax import models
  from vit_jax.data import augment
  from vit_jax.training.checkpoint import model_of_run
  try:
    model, config = model_of_run(args.workdir)
    if not isinstance(model, models.ViT):
      raise ValueError(f'{args.workdir!r} holds a {type(model).__name__}; attention maps are for ViTs.')
    size = config['data']['image_size']
    images = np.stack([np.asarray(Image.fromarray(load_image(p)).resize((size, size), Image.BICUBIC))
                       for p in args.images])
    maps = attention_maps(model, augment.normalize(images, config['data']['mean'], config['data']['std']))
    save_attention_grid(args.out, images, maps, titles=[p.rsplit('/', 1)[-1][:24] for p in args.images])
  except (ImageError, FileNotFoundError, ValueError, KeyError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'Wrote {args.out!r}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
