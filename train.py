r"""Trains a ViT on CIFAR-10 (or any image-folder / TFDS data set).

    python train.py --config configs/deit_ti.py --workdir workdirs/deit_ti
    python train.py --config configs/cpu_quick.py --config.total_epochs=2

Any config field can be overridden: --config.optim.lr=1e-3. Running the same
command again in the same --workdir resumes from the latest checkpoint.
Across hosts, start the same command on every host with --distributed (and,
outside SLURM / MPI / Kubernetes / TPU pods, --coordinator_address=HOST:PORT
--num_processes=N --process_id=I).
"""

import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file('config', 'configs/deit_ti.py', 'Training config file (a get_config() module).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and report (default: workdirs/<config name>).')
flags.DEFINE_bool('distributed', False, 'Multi-host run: call jax.distributed.initialize() (on SLURM, MPI, '
                  'Kubernetes and TPU pods it finds the cluster itself; elsewhere give the three flags below).')
flags.DEFINE_string('coordinator_address', None, 'With --distributed: host:port of process 0.')
flags.DEFINE_integer('num_processes', None, 'With --distributed: number of processes.')
flags.DEFINE_integer('process_id', None, 'With --distributed: index of this process.')
FLAGS = flags.FLAGS


def _raise_interrupt(signum, frame):
  raise KeyboardInterrupt


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.ERROR)
  import jax
  from vit_jax.data import DataError
  from vit_jax.train import ConfigError, train_and_evaluate

  if FLAGS.distributed:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  config_name = config_flags.get_config_filename(FLAGS['config']).rsplit('/', 1)[-1].removesuffix('.py')
  workdir = FLAGS.workdir or f'workdirs/{config_name}'
  signal.signal(signal.SIGTERM, _raise_interrupt)  # Preemption: checkpoint, then stop.
  try:
    train_and_evaluate(FLAGS.config, workdir)
  except (DataError, ConfigError) as e:
    sys.exit(f'error: {e}')
  except KeyboardInterrupt:
    sys.exit(130)


def _parse_flags(argv):
  """absl flag parsing, with a bad or unknown --config.* key as one line."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'error: {e}')
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = str(e).strip('\'"').replace('\\n', ' ').replace("\\'", "'")
    sys.exit(f'error: bad config override ({message}); see the fields of the config file.')


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
