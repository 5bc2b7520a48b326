"""Models by name, as timm's `create_model`:

    from vit_jax.models import create_model
    model = create_model('deit_tiny', num_classes=10, patch_size=4)
    model = create_model('writeup_b_hybrid', num_classes=10)   # ResNet stem + ViT
    model = create_model('resnet18', num_classes=10)

A name is a preset: an architecture and values of its config's fields
(ViTConfig, ResNetConfig); keyword arguments override them. A new
architecture is one file and one line in ARCHITECTURES; a new variant is
one line in PRESETS.
"""

from __future__ import annotations

from flax import nnx

from vit_jax.models.resnet import ResNet, ResNetConfig
from vit_jax.models.vit import ViT, ViTConfig

ARCHITECTURES = {'vit': (ViTConfig, ViT), 'resnet': (ResNetConfig, ResNet)}

# Write-up B's ViT: pre-norm blocks with LayerScale, DropPath; its shape is not recorded: DeiT-Ti's.
_B = dict(dim=192, depth=12, num_heads=3, layerscale_init=1e-4, drop_path=0.1)

PRESETS = {  # name: (architecture, config fields); A-E: the earlier write-ups this project grew from.
    'vit': ('vit', {}),  # ViTConfig's defaults: a DeiT-Ti shape; give the fields you need.
    'deit_tiny': ('vit', dict(dim=192, depth=12, num_heads=3)),  # DeiT-Ti (Touvron et al. 2021); write-up E.
    'deit_small': ('vit', dict(dim=384, depth=12, num_heads=6)),
    'deit_base': ('vit', dict(dim=768, depth=12, num_heads=12)),
    'writeup_a': ('vit', dict(dim=256, depth=10, num_heads=8)),  # Reported ~85%.
    'writeup_b': ('vit', _B),  # Reported ~80% plain, 82-83% with its regularisation.
    'writeup_b_conv': ('vit', {**_B, 'stem': 'conv'}),  # "Small CNN stem": ~82%.
    'writeup_b_hybrid': ('vit', {**_B, 'stem': 'resnet'}),  # ResNet features -> transformer: 87%.
    'writeup_b_distilled': ('vit', {**_B, 'distillation_token': True}),  # ResNet-18 teacher: 86%.
    'writeup_c': ('vit', dict(dim=256, depth=8, num_heads=8, dropout=0.1)),
    'writeup_d': ('vit', dict(dim=256, depth=8, num_heads=8, mlp_dim=512, dropout=0.1)),  # Reported 80.81%.
    'resnet18': ('resnet', dict(stage_sizes=(2, 2, 2, 2))),
    'resnet34': ('resnet', dict(stage_sizes=(3, 4, 6, 3))),
}


def model_config(name: str, **overrides) -> ViTConfig | ResNetConfig:
  """The config of preset `name` with `overrides`; ValueError for an unknown
  name, TypeError for a field its architecture does not have."""
  if name not in PRESETS:
    raise ValueError(f'unknown model {name!r}; choose one of {", ".join(PRESETS)}.')
  architecture, fields = PRESETS[name]
  return ARCHITECTURES[architecture][0](**{**fields, **overrides})


def section_config(section, **fields) -> ViTConfig | ResNetConfig:
  """The config of a training config's `model` section ({'name': preset, field:
  value}) with `fields` (the data's image_size, num_classes); fields set to None
  there (unset) keep the preset's value."""
  values = {k: v for k, v in dict(section).items() if v is not None}
  return model_config(values.pop('name', None), **values, **fields)


def create_model(name: str, *, seed: int = 0, **overrides) -> nnx.Module:
  """The model of preset `name` with `overrides`, initialised from `seed`."""
  return build(model_config(name, **overrides), seed=seed)


def build(cfg: ViTConfig | ResNetConfig, *, seed: int = 0) -> nnx.Module:
  """The model of a config."""
  model_class = next(model for config_class, model in ARCHITECTURES.values() if isinstance(cfg, config_class))
  return model_class(cfg, rngs=nnx.Rngs(seed))


__all__ = ['ARCHITECTURES', 'PRESETS', 'ResNet', 'ResNetConfig', 'ViT', 'ViTConfig', 'build', 'create_model',
           'model_config', 'section_config']
