"""seg_bridge.loading: device choice and missing-model messages."""

import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from seg_bridge import loading  # noqa: E402
from seg_bridge.loading import ModelNotFoundError, load_pretrained, pick_device  # noqa: E402


@pytest.mark.parametrize('cuda, mps, expected', [(True, True, 'cuda'), (False, True, 'mps'), (False, False, 'cpu')])
def test_device_is_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
  monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
  monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: mps)
  assert pick_device() == expected
  assert pick_device('cpu') == 'cpu'  # An explicit choice wins.


def test_a_missing_folder_is_named_as_a_folder(tmp_path):
  with pytest.raises(ModelNotFoundError, match=r"Some model folder '.*/gone' does not exist; pass the folder"):
    load_pretrained(transformers.AutoConfig, str(tmp_path / 'gone'), 'Some model')


def test_a_folder_without_a_model_says_what_it_must_hold(tmp_path):
  with pytest.raises(ModelNotFoundError, match=r"folder '.*' cannot be loaded \(.*\); it must hold a copy saved"):
    load_pretrained(transformers.AutoConfig, str(tmp_path), 'Some model')


def test_an_uncached_name_fails_fast_when_the_hub_is_unreachable(monkeypatch):
  monkeypatch.setattr(loading, 'hub_reachable', lambda: False)
  with pytest.raises(ModelNotFoundError) as error:
    load_pretrained(transformers.AutoConfig, 'no-such-org/no-such-model', 'Some model')
  message = str(error.value)
  assert message.startswith("Some model 'no-such-org/no-such-model' is neither a local folder nor in the Hugging")
  assert 'the Hub cannot be reached' in message and '\n' not in message


def test_offline_mode_means_unreachable(monkeypatch):
  from huggingface_hub import constants
  monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
  assert not loading.hub_reachable()
