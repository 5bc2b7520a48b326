"""Public names that load their modules on first use, for the packages' __init__ (standard library only).

    __getattr__, __dir__ = lazy.exports(globals(), {'create_model': ('vit_jax.models', 'create_model')})
"""

from __future__ import annotations

import importlib


def exports(namespace: dict, table: dict[str, tuple[str, str]]):
  """(__getattr__, __dir__) of a package whose names `table` maps to (module, attribute)."""
  package = namespace['__name__']

  def __getattr__(name: str):
    if name not in table:
      raise AttributeError(f'module {package!r} has no attribute {name!r}')
    module, attribute = table[name]
    value = getattr(importlib.import_module(module), attribute)
    namespace[name] = value  # Once.
    return value

  def __dir__():
    return sorted(set(namespace) | set(table))
  return __getattr__, __dir__
