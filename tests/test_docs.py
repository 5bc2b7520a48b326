"""The README and docs/ stay true: every Python block marked
`<!-- runnable -->` runs (on the tiny fixtures: a finished tiny run as
workdirs/cpu_quick, the committed CIFAR sample as the local CIFAR-10 copy,
tiny random models in place of the Hub's), every `--flag` of a `python ...`
command is one its parser accepts, every `config.x` is a field of a config,
every file in results/ is indexed, and every relative link points at a file."""

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from tiny_train_config import FIXTURE

PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md')), ROOT / 'bench' / 'README.md',
         ROOT / 'results' / 'README.md']
RUNNABLE = re.compile(r'<!-- runnable -->\n```python\n(.*?)```', re.S)


def runnable_blocks():
  return [pytest.param(block, id=f'{page.relative_to(ROOT)}:{k}') for page in PAGES
          for k, block in enumerate(RUNNABLE.findall(page.read_text()))]


def test_the_front_page_is_short_and_every_page_has_a_runnable_or_a_command():
  assert len((ROOT / 'README.md').read_text().splitlines()) <= 200
  assert len(runnable_blocks()) >= 4


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory, finished_run, clipseg_dir, sam2_dir):
  """A folder to run the snippets in, and what they are given in place of the Hub's models."""
  root = tmp_path_factory.mktemp('snippets')
  (root / 'workdirs').mkdir()
  (root / 'workdirs' / 'cpu_quick').symlink_to(finished_run)
  (root / 'data').mkdir()
  shutil.copy(FIXTURE, root / 'data' / 'cifar10-jpeg.tar.gz')  # The 'cifar10' source's local copy.
  tiny_models = f"finder_model={str(clipseg_dir)!r}, masker_model={str(sam2_dir)!r}, threshold=0, min_score=0, " \
                "device='cpu'"
  return root, {"masker='sam2')": f"masker='sam2', {tiny_models})"}


@pytest.mark.parametrize('block', runnable_blocks())
def test_a_runnable_block_runs(block, sandbox):
  root, substitutions = sandbox
  for old, new in substitutions.items():
    block = block.replace(old, new)
  env = {**os.environ, 'VIT_JAX_DATA': str(root / 'data'), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': str(ROOT)}
  result = subprocess.run([sys.executable, '-c', block], cwd=root, capture_output=True, text=True, timeout=300,
                          env=env)
  assert result.returncode == 0, result.stderr[-3000:]


# ------------------------------------------------------------ flags and fields

COMMAND = re.compile(r'python3? (-m [\w.]+|[\w/]+\.py)((?:\\\n|[^\n`|&;])*)')
FLAG = re.compile(r'(?<![\w-])(--[a-z][\w-]*)')


def commands() -> dict[str, set[str]]:
  """{script or -m module: the flags the docs give it}."""
  found: dict[str, set[str]] = {}
  for page in PAGES:
    for target, rest in COMMAND.findall(page.read_text()):
      flags = {f for f in FLAG.findall(rest.split(' # ')[0]) if not f.startswith('--config.')}
      found.setdefault(target, set()).update(flags)
  return found


def accepted_flags(target: str) -> str:
  argv = [sys.executable, *target.split()] if target.startswith('-m') else [sys.executable, target]
  result = subprocess.run([*argv, '--help'], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  return result.stdout + result.stderr


def test_every_flag_the_docs_name_is_accepted():
  wanted = {target: flags for target, flags in commands().items()
            if flags and (target.startswith('-m vit_jax') or target.startswith('-m seg_bridge')
                          or (ROOT / target).is_file())}
  assert {'train.py', 'segment.py', '-m vit_jax.data.arrayrecord'} <= set(wanted)
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    helps = dict(zip(wanted, pool.map(accepted_flags, wanted)))
  missing = {target: sorted(f for f in flags if not re.search(re.escape(f) + r'\b', helps[target]))
             for target, flags in wanted.items()}
  assert not {t: m for t, m in missing.items() if m}, missing


def config_fields() -> set[str]:
  """Every field path of every config in configs/ ('optim.lr', 'data.source', ...)."""
  import importlib
  fields = set()

  def walk(prefix, node):
    for key, value in node.items():
      fields.add(prefix + key)
      if hasattr(value, 'items'):
        walk(prefix + key + '.', value)
  sys.path.insert(0, str(ROOT))
  for path in sorted((ROOT / 'configs').glob('*.py')):
    if path.stem != '__init__':
      walk('', importlib.import_module(f'configs.{path.stem}').get_config())
  return fields


def test_every_config_field_the_docs_name_exists():
  fields = config_fields()
  named = {m.rstrip('.') for page in PAGES
           for m in re.findall(r'(?<![\w.])(?:--)?config\.([a-z_][\w]*(?:\.[a-z_][\w]*)*)', page.read_text())}
  assert 'total_seconds' in named and 'data.source' in named
  unknown = sorted(n for n in named if n not in fields and n != 'json')  # config.json: a file.
  assert not unknown, unknown


def test_every_results_file_is_indexed_and_every_link_resolves():
  index = (ROOT / 'results' / 'README.md').read_text()
  for path in (ROOT / 'results').iterdir():
    if path.name != 'README.md' and path.name != 'sweeps':
      assert f'`{path.name}`' in index or path.name in index, path.name
  for name in os.listdir(ROOT / 'results' / 'sweeps'):
    assert f'`{name}`' in index, name
  for page in PAGES:
    for link in re.findall(r'\]\(([^)#:]+)(?:#[^)]*)?\)', page.read_text()):
      assert (page.parent / link).exists(), (page.name, link)
