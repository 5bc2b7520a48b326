r"""A ViT small enough to train in seconds on the committed CIFAR fixture.

    python train.py --config tests/tiny_train_config.py --workdir /tmp/tiny

tests/fixtures/cifar10_small.tar.gz holds real CIFAR-10 images (JPEG copy):
train/CLASS/0000-0099.jpg and test/CLASS/0000-0029.jpg for the ten classes.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))  # configs/, also when train.py loads this file.

from configs import deit_ti, model_section  # noqa: E402

FIXTURE = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'cifar10_small.tar.gz'


def tiny_config(**overrides):
  """DeiT recipe on a ViT small enough to train in seconds on the fixture."""
  config = deit_ti.get_config()
  config.data.source = f'folder:{FIXTURE}'
  config.model = model_section('deit_tiny', patch_size=8, stem='patch', dim=64, depth=2, num_heads=2, mlp_dim=128,
                               drop_path=0.0, dropout=0.0, dtype='float32')
  config.aug.randaugment_layers = 1
  config.aug.mixup_alpha = 0.0
  config.aug.cutmix_alpha = 0.0
  config.aug.random_erasing = 0.0
  config.data.val_size = 100
  config.batch_size = 100
  config.eval_batch_size = 100
  config.total_epochs = 2
  config.optim.lr = 2e-3
  config.optim.lr_base_batch_size = 100
  config.schedule.warmup_epochs = 0.5
  config.eval_every_epochs = 1
  config.checkpoint_every_epochs = 1
  config.log_every_steps = 5
  config.progress_bar = False
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value
  return config


def get_config():
  return tiny_config()
