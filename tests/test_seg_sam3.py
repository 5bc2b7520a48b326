"""SAM 3 as a segmenter, on a tiny random SAM 3 saved and loaded back by path:
all phrases against one image encoding give what the model's own forward
gives for each phrase alone."""

import json

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

import segment  # noqa: E402
from seg_bridge import loading  # noqa: E402
from seg_bridge.build import Options, build  # noqa: E402
from seg_bridge.loading import ModelNotFoundError  # noqa: E402
from seg_bridge.segmenters.sam3 import Sam3Segmenter  # noqa: E402
from seg_bridge.types import PromptError  # noqa: E402


@pytest.fixture(scope='module')
def segmenter(sam3_dir):
  return Sam3Segmenter.load(sam3_dir, 'cpu', min_score=0.0)


@pytest.fixture(scope='module')
def image():
  return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_phrases_share_one_encoding_and_match_the_model_one_by_one(segmenter, image, monkeypatch):
  encodings = []
  original = segmenter.model.get_vision_features
  monkeypatch.setattr(segmenter.model, 'get_vision_features', lambda **kw: encodings.append(1) or original(**kw))
  result = segmenter.segment(image, 'dog, a cat')
  assert len(encodings) == 1 and result.prompts == ['dog', 'a cat'] and result.heatmaps.shape == (2, 120, 160)
  for prompt in result.prompts:  # The model's own forward from pixels, one phrase at a time.
    inputs = segmenter.processor(images=image, text=prompt, return_tensors='pt')
    with torch.inference_mode():
      outputs = segmenter.model(**{k: v for k, v in inputs.items() if k != 'original_sizes'})
    found = segmenter.processor.post_process_instance_segmentation(outputs, threshold=0.0, target_sizes=[(120, 160)])[0]
    ours = sorted((i for i in result.instances if i.label == prompt), key=lambda i: -i.score)
    expected = sorted(zip(found['scores'].tolist(), found['masks'].bool().numpy()), key=lambda x: -x[0])
    expected = [(s, m) for s, m in expected if m.any()]
    assert len(ours) == len(expected) > 0
    for inst, (score, mask) in zip(ours, expected):
      assert inst.score == pytest.approx(score, abs=1e-4)
      assert (inst.mask != mask).mean() < 1e-3  # Up to pixels on the 0.5 boundary.
  scores = [i.score for i in result.instances]
  assert scores == sorted(scores, reverse=True)


def test_scores_limits_and_a_kept_embedding(segmenter, image, sam3_dir):
  embedding = segmenter.embed(image)
  again = segmenter.segment(image, ['dog'], embedding=embedding)
  assert [i.score for i in again.instances] == [i.score for i in segmenter.segment(image, 'dog').instances]
  strict = Sam3Segmenter.load(sam3_dir, 'cpu', min_score=1.0)
  assert strict.segment(image, 'dog').instances == []
  one = Sam3Segmenter.load(sam3_dir, 'cpu', min_score=0.0, max_per_prompt=1)
  assert len(one.segment(image, 'dog, cat').instances) <= 2


def test_long_phrases_and_missing_weights_are_one_sentence(segmenter, monkeypatch):
  with pytest.raises(PromptError, match='SAM 3 reads at most 32'):
    segmenter.check_prompts([' '.join(['dog'] * 40)])
  monkeypatch.setattr(loading, 'hub_reachable', lambda: False)
  with pytest.raises(ModelNotFoundError, match='SAM 3 model .* is neither a local folder nor in the Hugging Face'):
    Sam3Segmenter.load('facebook/sam3', 'cpu')


def test_the_builder_and_the_command_line(tmp_path, sam3_dir, image):
  segmenter, settings = build(Options(finder='sam3', finder_model=sam3_dir, min_score=0.0, device='cpu'))
  assert isinstance(segmenter, Sam3Segmenter) and settings == {'finder': 'sam3', 'finder_model': sam3_dir,
                                                               'min_score': 0.0}
  from PIL import Image
  Image.fromarray(image).save(tmp_path / 'dog.png')
  out = tmp_path / 'out'
  assert segment.main(['--finder', 'sam3', '--finder-model', sam3_dir, '--prompt', 'dog, cat', '--min-score', '0',
                       '--device', 'cpu', '--out', str(out), str(tmp_path / 'dog.png')]) == 0
  record = json.loads((out / 'dog' / 'result.json').read_text())
  assert record['instances'] and {i['label'] for i in record['instances']} <= {'dog', 'cat'}
  assert record['settings']['finder'] == 'sam3'
