"""seg_bridge finders on tiny randomly initialised models saved and loaded
back by path (the real from_pretrained code; no downloads)."""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from seg_bridge.finders import ClipSegFinder  # noqa: E402
from seg_bridge.sam import ModelNotFoundError  # noqa: E402

WORDS = ['dog', 'cat', 'cap', 'skateboard', 'a', 'photo', 'of']


def tiny_tokenizer():
  letters = sorted(set(''.join(WORDS)))
  tokens = ['<|startoftext|>', '<|endoftext|>'] + letters + [c + '</w>' for c in letters]
  merges = []
  for word in WORDS:  # Merge each word left to right into one token.
    piece = word[0]
    for i, c in enumerate(word[1:], start=1):
      right = c + '</w>' if i == len(word) - 1 else c
      merges.append((piece, right))
      piece += right
      tokens.append(piece)
  vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
  return transformers.CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)))


@pytest.fixture(scope='module')
def clipseg_dir(tmp_path_factory):
  torch.manual_seed(0)
  tokenizer = tiny_tokenizer()
  config = transformers.CLIPSegConfig(
      text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                       pad_token_id=1),
      vision_config=dict(image_size=64, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=2),
      projection_dim=32, extract_layers=[1, 2], reduce_dim=16, decoder_num_attention_heads=2,
      decoder_intermediate_size=32)
  model = transformers.CLIPSegForImageSegmentation(config)
  image_processor = transformers.ViTImageProcessor(size={'height': 64, 'width': 64},
                                                   image_mean=[0.481, 0.458, 0.408], image_std=[0.269, 0.261, 0.276])
  processor = transformers.CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)
  path = tmp_path_factory.mktemp('clipseg')
  model.save_pretrained(path)
  processor.save_pretrained(path)
  return str(path)


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
