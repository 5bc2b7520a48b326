"""XLA options that make the train step faster on CPU; set before JAX starts.

    from vit_jax import xla_flags
    xla_flags.use_fast_cpu_flags()   # before `import jax`
    import jax

They change only how XLA schedules CPU code, never the results, and are
ignored by GPU and TPU backends. A flag already in XLA_FLAGS wins.
Measured in results/profile_cpu.md (bench/train_throughput.py).
"""

import os

FAST_CPU_FLAGS = (
    # XLA's default CPU scheduler runs independent ops at once, and each then
    # gets part of the cores; one op after the other is 10-15% faster here.
    '--xla_cpu_enable_concurrency_optimized_scheduler=false',
)


def use_fast_cpu_flags() -> None:
  """Prepends FAST_CPU_FLAGS to XLA_FLAGS, except flags already set there."""
  given = os.environ.get('XLA_FLAGS', '')
  missing = [flag for flag in FAST_CPU_FLAGS if flag.split('=')[0] not in given]
  os.environ['XLA_FLAGS'] = ' '.join([*missing, given]).strip()
