"""seg_bridge.loading: device choice and missing-model messages."""

import pytest

torch = pytest.importorskip('torch')

from seg_bridge.loading import ModelNotFoundError, load_pretrained, pick_device  # noqa: E402


@pytest.mark.parametrize('cuda, mps, expected', [(True, True, 'cuda'), (False, True, 'mps'), (False, False, 'cpu')])
def test_device_is_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
  monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
  monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: mps)
  assert pick_device() == expected
  assert pick_device('cpu') == 'cpu'  # An explicit choice wins.


def test_load_pretrained_turns_loader_errors_into_one_sentence():
  class Missing:
    @classmethod
    def from_pretrained(cls, name):
      raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}.\nCheck your connection.")

  with pytest.raises(ModelNotFoundError) as error:
    load_pretrained(Missing, 'org/model', 'Some model')
  message = str(error.value)
  assert message.startswith("Some model 'org/model' is neither a local folder nor in the Hugging Face cache")
  assert '\n' not in message and 'save_pretrained()' in message
