"""Training configs: Python files with get_config(), run with train.py --config."""

import dataclasses
import types
import typing

import ml_collections
from ml_collections import config_dict

from vit_jax import models

FROM_DATA = ('image_size', 'num_classes')  # Model fields that train.py takes from the data.


def model_section(name: str, **values) -> ml_collections.ConfigDict:
  """config.model: preset `name` of vit_jax.models.PRESETS with `values`, and
  every other field of its architecture's config as an unset placeholder, so
  that the command line can set any of them (--config.model.stem_width=16);
  a field left unset keeps the preset's value."""
  config_class = type(models.model_config(name))  # ViTConfig or ResNetConfig; ValueError for an unknown name.
  hints = typing.get_type_hints(config_class)
  section = {'name': name}
  for field in dataclasses.fields(config_class):
    if field.name not in FROM_DATA:
      section[field.name] = values.pop(field.name) if field.name in values else config_dict.placeholder(
          _value_type(hints[field.name]))
  if values:
    raise TypeError(f'{name}: no model field {", ".join(values)}.')
  return ml_collections.ConfigDict(section)


def _value_type(hint) -> type:
  """int | None -> int; tuple[int, ...] -> tuple; str -> str."""
  if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
    hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
  return typing.get_origin(hint) or hint
