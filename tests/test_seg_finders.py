"""seg_bridge finders on tiny randomly initialised models saved and loaded
back by path (the real from_pretrained code; no downloads)."""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from seg_bridge.finders import ClipSegFinder  # noqa: E402
from seg_bridge.sam import ModelNotFoundError  # noqa: E402
from seg_tiny import save_tiny_clipseg  # noqa: E402


@pytest.fixture(scope='module')
def clipseg_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp('clipseg')
  return save_tiny_clipseg(path)


def test_clipseg_heatmaps_have_the_image_size_one_per_prompt(clipseg_dir):
  finder = ClipSegFinder(clipseg_dir, device='cpu')
  image = np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)
  probs = finder.heatmaps(image, ['dog', 'skateboard', 'a photo of cat'])
  assert probs.shape == (3, 90, 130) and probs.dtype == np.float32
  assert probs.min() >= 0 and probs.max() <= 1
  one = finder.heatmaps(image, ['dog'])
  assert one.shape == (1, 90, 130)
  np.testing.assert_allclose(one[0], probs[0], atol=1e-5)  # Batching prompts changes nothing.
  assert not np.allclose(probs[0], probs[1])


def test_missing_model_is_one_sentence(tmp_path, monkeypatch):
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  with pytest.raises(ModelNotFoundError, match='neither a local folder nor in the Hugging Face cache'):
    ClipSegFinder(str(tmp_path / 'no-such-model'), device='cpu')
