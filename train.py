r"""Trains a ViT on CIFAR-10 (or any image-folder / TFDS data set).

    python train.py --config configs/deit_ti.py --workdir workdirs/deit_ti
    python train.py --config configs/cpu_quick.py --config.total_epochs=2

Any config field can be overridden: --config.optim.lr=1e-3. Running the same
command again in the same --workdir resumes from the latest checkpoint (with
other settings it is refused, unless --resume_with_changes).

Exit status: 0 trained (or already finished); 1 diverged, or a disk error;
2 a bad flag, config value, data set or checkpoint, before any training;
130 Ctrl-C, 143 SIGTERM, after saving a checkpoint to resume from.
Across hosts, start the same command on every host with --distributed (and,
outside SLURM / MPI / Kubernetes / TPU pods, --coordinator_address=HOST:PORT
--num_processes=N --process_id=I).
"""

import sys
import warnings

from vit_jax import xla_flags
from vit_jax.interrupts import Interrupted, StopRequest

STOP = StopRequest()  # Ctrl-C and SIGTERM: a checkpoint while training, never a traceback.
if __name__ == '__main__':
  STOP.install()
  xla_flags.use_fast_cpu_flags()  # Before JAX starts.

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file('config', 'configs/deit_ti.py', 'Training config file (a get_config() module).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and report (default: workdirs/<config name>).')
flags.DEFINE_bool('resume_with_changes', False, 'Resume a run in --workdir although the config differs from the one '
                  'it was started with (the old one is kept as config_until_step_<step>.json).')
flags.DEFINE_bool('distributed', False, 'Multi-host run: call jax.distributed.initialize() (on SLURM, MPI, '
                  'Kubernetes and TPU pods it finds the cluster itself; elsewhere give the three flags below).')
flags.DEFINE_string('coordinator_address', None, 'With --distributed: host:port of process 0.')
flags.DEFINE_integer('num_processes', None, 'With --distributed: number of processes.')
flags.DEFINE_integer('process_id', None, 'With --distributed: index of this process.')
FLAGS = flags.FLAGS


def fail(message: str, status: int):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(status)


def _quiet_failed_saves() -> None:
  """Drops what Orbax and tensorstore leave on stderr after a save failed (a
  full disk): 'Event loop is closed' from late callbacks, and coroutines
  never awaited at exit. The failure itself is said in one line."""
  def closed_loop(value) -> bool:
    return isinstance(value, RuntimeError) and str(value) == 'Event loop is closed'
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook
  sys.excepthook = lambda kind, value, tb: closed_loop(value) or excepthook(kind, value, tb)
  sys.unraisablehook = lambda unraisable: closed_loop(unraisable.exc_value) or unraisablehook(unraisable)
  warnings.filterwarnings('ignore', message='coroutine .* was never awaited', category=RuntimeWarning)


def main(argv):
  if len(argv) > 1:
    fail(f'unexpected arguments: {" ".join(map(repr, argv[1:]))}; options are --flag=value (see --help).', 2)
  logging.set_verbosity(logging.FATAL)  # Orbax logs its failures (e.g. a full disk) from threads; they arrive as one line.
  _quiet_failed_saves()
  try:
    import jax
    from vit_jax.cache import compilation_cache_dir
    from vit_jax.data import DataError
    from vit_jax.training.loop import ConfigError, train_and_evaluate
    from vit_jax.training.validate import check_config

    check_config(FLAGS.config)  # Before JAX starts: cpu_devices must be set before it does.
    if FLAGS.config.get('cpu_devices'):
      jax.config.update('jax_num_cpu_devices', FLAGS.config.cpu_devices)
    if FLAGS.distributed:
      try:
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
      except (ValueError, RuntimeError) as e:
        fail(f'--distributed: cannot join the cluster ({str(e).splitlines()[0][:200]}).', 2)
    # Compiled steps are kept for the next run of the same config and code: ~5 s less per step function on CPU.
    jax.config.update('jax_compilation_cache_dir', compilation_cache_dir())
    # A damaged or unwritable cache entry only costs its compilation (JAX compiles and replaces it).
    warnings.filterwarnings('ignore', message='Error (reading|writing) persistent compilation cache entry')
    config_name = config_flags.get_config_filename(FLAGS['config']).rsplit('/', 1)[-1].removesuffix('.py')
    workdir = FLAGS.workdir or f'workdirs/{config_name}'
    train_and_evaluate(FLAGS.config, workdir, stop=STOP, resume_with_changes=FLAGS.resume_with_changes)
  except (DataError, ConfigError) as e:
    fail(str(e), 2)
  except FloatingPointError as e:  # Diverged: the checkpoints before it are kept.
    fail(f'training diverged: {e}', 1)
  except OSError as e:  # Disk full, no permission, ...: the checkpoints before it are kept.
    fail(f'{e.strerror}: {e.filename!r}' if e.strerror and e.filename else str(e.strerror or e), 1)


def _parse_flags(argv):
  """absl flag parsing, with a bad flag, config file or --config.* key as one line."""
  try:
    argv = FLAGS(argv)
    FLAGS.config.get('seed')  # A config file that failed to load raises here, not later.
    return argv
  except flags.Error as e:  # A config file's own error is the last line of the traceback absl puts in it.
    lines = [line for line in str(e).splitlines() if line.strip()]
    fail(f'cannot load the config file: {lines[-1]}' if 'Traceback' in str(e) else lines[0], 2)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = str(e).strip('\'"').replace('\\n', ' ').replace("\\'", "'")
    fail(f'bad config override ({message}); see the fields of the config file.', 2)
  except Exception as e:  # The config file itself: missing, or not Python.
    reason = ' '.join(str(e).split())[:300] or type(e).__name__
    fail(f'cannot load the config file: {reason}', 2)


if __name__ == '__main__':
  try:
    app.run(main, flags_parser=_parse_flags)
  except KeyboardInterrupt as e:
    print(e if isinstance(e, Interrupted) else 'Interrupted before training started; nothing to keep.', file=sys.stderr)
    sys.exit(STOP.exit_status)
