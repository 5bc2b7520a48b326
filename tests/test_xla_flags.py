"""train.py's XLA options: added before JAX starts, never over the user's."""

import os

from vit_jax import xla_flags


def test_fast_cpu_flags_are_added_but_never_override_the_users(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=4')
  xla_flags.use_fast_cpu_flags()
  flags = os.environ['XLA_FLAGS'].split()
  assert flags == [*xla_flags.FAST_CPU_FLAGS, '--xla_force_host_platform_device_count=4']
  name = xla_flags.FAST_CPU_FLAGS[0].split('=')[0]
  monkeypatch.setenv('XLA_FLAGS', f'{name}=true')
  xla_flags.use_fast_cpu_flags()
  assert os.environ['XLA_FLAGS'] == f'{name}=true'
