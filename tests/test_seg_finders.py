"""seg_bridge finders on tiny randomly initialised models saved and loaded
back by path (the real from_pretrained code; no downloads)."""

import re

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from seg_bridge.finders import ClipSegFinder, GroundingDinoFinder, make_finder  # noqa: E402
from seg_bridge.finders.grounding_dino import box_heatmaps, phrase_spans  # noqa: E402
from seg_bridge import loading  # noqa: E402
from seg_bridge.loading import ModelNotFoundError  # noqa: E402


@pytest.fixture
def image():
  return np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)


def test_clipseg_encodes_the_image_once_with_the_logits_of_the_full_model(clipseg_dir, image):
  finder = ClipSegFinder(clipseg_dir, device='cpu')
  prompts = ['dog', 'skateboard', 'a photo of cat']
  encoder_calls = []
  finder.model.clip.vision_model.register_forward_hook(lambda module, args, out: encoder_calls.append(1))
  probs = finder.heatmaps(image, prompts)
  assert len(encoder_calls) == 1
  assert probs.shape == (3, 90, 130) and probs.dtype == np.float32
  assert probs.min() >= 0 and probs.max() <= 1

  inputs = finder.processor(text=prompts, images=[image] * 3, padding=True, return_tensors='pt')
  with torch.inference_mode():
    logits = finder.model(**inputs).logits[:, None]  # The model's own forward, the image repeated per prompt.
  reference = torch.sigmoid(torch.nn.functional.interpolate(logits, size=(90, 130), mode='bilinear'))[:, 0]
  np.testing.assert_allclose(probs, reference.numpy(), atol=1e-5)
  np.testing.assert_allclose(finder.heatmaps(image, ['dog'])[0], probs[0], atol=1e-5)  # P = 1 too.
  assert not np.allclose(probs[0], probs[1])


def test_clipseg_find_thresholds_each_heatmap(clipseg_dir, image):
  everything = ClipSegFinder(clipseg_dir, device='cpu', threshold=0.0, min_score=0.0).find(image, ['dog', 'cap'])
  assert everything.heatmaps.shape == (2, 90, 130)
  assert [len(r) for r in everything.regions] == [1, 1]  # Threshold 0: the whole image, one region.
  np.testing.assert_array_equal(everything.regions[0][0].box, [0, 0, 130, 90])
  nothing = ClipSegFinder(clipseg_dir, device='cpu', min_score=1.0).find(image, ['dog', 'cap'])
  assert nothing.regions == [[], []]


def test_phrase_spans_and_caption():
  finder = GroundingDinoFinder.__new__(GroundingDinoFinder)
  caption, spans = finder.caption(['Dog', 'a skateboard'])
  assert caption == 'dog. a skateboard.' and spans == [(0, 3), (5, 17)]
  offsets = [(0, 0), (0, 3), (3, 4), (5, 6), (7, 12), (12, 17), (17, 18), (0, 0)]  # [CLS] dog . a skate ##board . [SEP]
  assert phrase_spans(offsets, spans) == [[1], [3, 4, 5]]


def test_box_heatmaps_keep_the_best_covering_score():
  boxes = np.array([[0, 0, 4, 4], [2, 2, 6, 6], [1, 1, 3, 3]], np.float32)
  maps = box_heatmaps(boxes, np.array([0.5, 0.8, 0.3]), np.array([0, 0, 1]), 2, (8, 8))
  assert maps.shape == (2, 8, 8)
  assert maps[0, 0, 0] == 0.5 and maps[0, 3, 3] == pytest.approx(0.8) and maps[0, 7, 7] == 0
  assert maps[1, 2, 2] == pytest.approx(0.3) and maps[1].sum() == pytest.approx(0.3 * 4)


def test_grounding_dino_finds_boxes_per_prompt_in_one_pass(dino_dir, image):
  finder = GroundingDinoFinder(dino_dir, device='cpu', min_score=0.0)
  calls = []
  finder.model.register_forward_hook(lambda module, args, out: calls.append(1))
  found = finder.find(image, ['dog', 'a skateboard', 'cap'])
  assert len(calls) == 1 and found.heatmaps.shape == (3, 90, 130)
  boxes = [region.box for regions in found.regions for region in regions]
  assert 0 < len(boxes) <= 20  # At most one per query.
  for regions in found.regions:
    assert len(regions) <= finder.max_per_prompt
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    for r in regions:
      x0, y0, x1, y1 = r.box
      assert 0 <= x0 < x1 <= 130 and 0 <= y0 < y1 <= 90 and r.point is None and r.mask is None
  assert found.heatmaps.max() == pytest.approx(max(r.score for rs in found.regions for r in rs))
  strict = GroundingDinoFinder(dino_dir, device='cpu', min_score=1.0).find(image, ['dog'])
  assert strict.regions == [[]] and not strict.heatmaps.any()


def test_grounding_dino_rejects_prompts_longer_than_it_reads(dino_dir, image):
  finder = GroundingDinoFinder(dino_dir, device='cpu')
  with pytest.raises(ValueError, match='at most 32'):
    finder.find(image, ['dog cat cap'] * 10)
  with pytest.raises(ValueError, match=re.escape(f"reads no words in {chr(0)!r}")):
    finder.find(image, ['dog', '\x00'])


def test_make_finder_by_name(clipseg_dir, dino_dir):
  assert isinstance(make_finder('clipseg', clipseg_dir, 'cpu', min_score=0.2), ClipSegFinder)
  assert isinstance(make_finder('grounding-dino', dino_dir, 'cpu'), GroundingDinoFinder)
  with pytest.raises(ValueError, match='unknown finder'):
    make_finder('owl', clipseg_dir)


@pytest.mark.parametrize('name, what', [('clipseg', 'CLIPSeg'), ('grounding-dino', 'Grounding DINO')])
def test_missing_model_is_one_sentence(tmp_path, monkeypatch, name, what):
  monkeypatch.setattr(loading, 'hub_reachable', lambda: False)  # As on a machine without network.
  with pytest.raises(ModelNotFoundError, match=f'{what} processor .* is neither a local folder nor in the Hugging'):
    make_finder(name, 'no-such-org/no-such-model', 'cpu')
  with pytest.raises(ModelNotFoundError, match=f'{what} processor folder .* does not exist'):
    make_finder(name, str(tmp_path / 'no-such-model'), 'cpu')
