"""Where vit_jax keeps what it can make again (standard library only):
listings of large image folders, compiled train steps, downloaded data sets.

    cache_dir()               # $VIT_JAX_CACHE, else $XDG_CACHE_HOME/vit_jax, else ~/.cache/vit_jax
    compilation_cache_dir()   # $JAX_COMPILATION_CACHE_DIR, else cache_dir()/xla
"""

from __future__ import annotations

import os


def cache_dir() -> str:
  return os.environ.get('VIT_JAX_CACHE') or os.path.join(
      os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'vit_jax')


def compilation_cache_dir() -> str:
  """Where train.py keeps compiled steps."""
  return os.environ.get('JAX_COMPILATION_CACHE_DIR') or os.path.join(cache_dir(), 'xla')
