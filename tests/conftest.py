"""Shared test helpers: a tiny training config on the committed CIFAR fixture.

tests/fixtures/cifar10_small.tar.gz holds real CIFAR-10 images (JPEG copy):
train/CLASS/0000-0099.jpg and test/CLASS/0000-0029.jpg for the ten classes.
"""

import os
import pathlib
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # The tests build their models; nothing is downloaded.
# One compilation cache for the session: the many train.py subprocesses of the
# same tiny config compile each program once, not once per process.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='vit_jax_test_cache_'))
os.environ['VIT_JAX_CACHE'] = tempfile.mkdtemp(prefix='vit_jax_test_listings_')  # Not the user's ~/.cache.

import subprocess  # noqa: E402

import pytest  # noqa: E402

from tiny_train_config import tiny_config  # noqa: E402, F401  (tests import it from here)

ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture
def config_factory():
  return tiny_config


@pytest.fixture(scope='session')
def jpeg_folder(tmp_path_factory):
  """The CIFAR fixture as a folder of JPEG files (1,000 train, 300 test); not to be changed."""
  import tarfile

  from tiny_train_config import FIXTURE
  root = tmp_path_factory.mktemp('cifar_folder')
  with tarfile.open(FIXTURE) as tar:
    tar.extractall(root, filter='data')
  return root


@pytest.fixture(scope='session')
def finished_run(tmp_path_factory):
  """The work directory of a finished one-epoch run of the tiny config, for the tools that read runs."""
  from vit_jax.training import loop as train
  workdir = tmp_path_factory.mktemp('finished_run')
  train.train_and_evaluate(tiny_config(total_epochs=1, **{'aug.randaugment_layers': 0}), str(workdir))
  return workdir


@pytest.fixture
def http_folder(tmp_path):
  """Serves tmp_path at http://127.0.0.1:PORT/ for the test."""
  import functools
  import http.server
  import threading
  class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                           functools.partial(QuietHandler, directory=str(tmp_path)))
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield tmp_path, f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()
  server.server_close()


@pytest.fixture(scope='session')
def clipseg_dir(tmp_path_factory):
  """A tiny random CLIPSeg saved like a Hub copy (seg_tiny imports torch, so only on use)."""
  from seg_tiny import save_tiny_clipseg
  return save_tiny_clipseg(tmp_path_factory.mktemp('clipseg'))


@pytest.fixture(scope='session')
def dino_dir(tmp_path_factory):
  """A tiny random Grounding DINO saved like a Hub copy."""
  from seg_tiny import save_tiny_grounding_dino
  return save_tiny_grounding_dino(tmp_path_factory.mktemp('dino'))


@pytest.fixture(scope='session')
def sam2_dir(tmp_path_factory):
  """A tiny random SAM 2 saved like a Hub copy: lets segment.py run in a subprocess."""
  from seg_tiny import save_tiny_sam2
  return save_tiny_sam2(tmp_path_factory.mktemp('sam2'))


@pytest.fixture(scope='session')
def sam2_video_dir(tmp_path_factory):
  """A tiny random SAM 2 video model saved like a Hub copy."""
  from seg_tiny import save_tiny_sam2_video
  return save_tiny_sam2_video(tmp_path_factory.mktemp('sam2_video'))


@pytest.fixture(scope='session')
def sam3_dir(tmp_path_factory):
  """A tiny random SAM 3 saved like a Hub copy."""
  from seg_tiny import save_tiny_sam3
  return save_tiny_sam3(tmp_path_factory.mktemp('sam3'))


def mounted(kind: str, where, size: str = '96k'):
  """Mounts a small tmpfs, or `where` read-only over itself (root only)."""
  if os.geteuid() != 0:
    pytest.skip('mounting a small or read-only file system needs root')
  where.mkdir(parents=True, exist_ok=True)
  command = (['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(where)] if kind == 'tmpfs' else
             ['mount', '--bind', '-o', 'ro', str(where), str(where)])
  if subprocess.run(command, capture_output=True).returncode:
    pytest.skip(f'cannot mount here ({" ".join(command)})')
  return where
