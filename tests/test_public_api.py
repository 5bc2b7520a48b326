"""The public names: `import vit_jax` and `import seg_bridge` offer what a
researcher reaches for, loaded on first use, so that the command lines, the
streaming workers and seg_bridge import no JAX through them."""

import json
import subprocess
import sys

import numpy as np
import pytest

import seg_bridge
import vit_jax
from conftest import ROOT
from tiny_train_config import FIXTURE


@pytest.mark.parametrize('imports', [
    'import vit_jax',
    'import seg_bridge, seg_bridge.cli',
    'import vit_jax.data.stream, vit_jax.data.sources, vit_jax.data.memory, vit_jax.data.arrayrecord',
    'import vit_jax.data.cifar10, vit_jax.download, vit_jax.images, vit_jax.files, vit_jax.cache',
])
def test_these_imports_bring_no_jax(imports):
  probe = f"{imports}; import sys; assert 'jax' not in sys.modules, [m for m in sys.modules if 'jax' in m][:5]"
  result = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr


def test_every_public_name_resolves():
  for package in (vit_jax, seg_bridge):
    for name in package.__all__:
      assert getattr(package, name) is not None, (package.__name__, name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match='has no attribute'):
      package.no_such_name  # noqa: B018


def test_a_finished_run_classifies_as_its_test_evaluation_did(finished_run):
  classifier = vit_jax.load_run(str(finished_run))
  test = vit_jax.load_data(f'folder:{FIXTURE}', ('test',))['test']
  probabilities = classifier.probabilities(test.images)
  assert probabilities.shape == (300, 10) and np.allclose(probabilities.sum(-1), 1, atol=1e-5)
  names = classifier.predict(test.images)
  accuracy = np.mean([name == test.class_names[label] for name, label in zip(names, test.labels)])
  report = json.loads((finished_run / 'report.json').read_text())
  assert accuracy == pytest.approx(report['test_accuracy'], abs=1 / 300)  # The same parameters and inputs.
  assert classifier.predict(test.images[0]) == names[:1]  # One image [H, W, 3] too.
  bigger = np.repeat(np.repeat(test.images[:4], 2, axis=1), 2, axis=2)  # 64x64: resized to the run's 32.
  assert len(classifier.predict(bigger)) == 4
