"""seg_bridge.TextSegmenter: finder -> regions -> one SAM batch, numpy in and out."""

import numpy as np
import pytest

pytest.importorskip('segment_anything')

from seg_bridge.finders.heatmap_regions import heatmap_to_regions  # noqa: E402
from seg_bridge.maskers.candidates import mask_boxes  # noqa: E402
from seg_bridge.maskers.sam import SamMasker  # noqa: E402
from seg_bridge.pipeline import TextSegmenter  # noqa: E402
from seg_bridge.types import Found, Region, parse_prompts  # noqa: E402
from test_seg_prompts import blob  # noqa: E402
from seg_tiny import tiny_sam  # noqa: E402


class SyntheticFinder:
  """Two blobs for 'dog', nothing for anything else; records its calls."""

  def __init__(self):
    self.calls = []

  def find(self, image, prompts):
    self.calls.append(list(prompts))
    h, w = image.shape[:2]
    dog = np.maximum(blob((h, w), (30, 40), 8, 0.9), blob((h, w), (80, 120), 10, 0.8))
    heatmaps = np.stack([dog if p == 'dog' else np.full((h, w), 0.1) for p in prompts]).astype(np.float32)
    return Found(heatmaps, [heatmap_to_regions(h) for h in heatmaps])


class BoxFinder:
  """A detector's output: one box for 'cap', nothing for anything else."""

  def find(self, image, prompts):
    regions = [[Region(np.array([20, 10, 90, 70], np.float32), 0.6)] if p == 'cap' else [] for p in prompts]
    return Found(np.zeros((len(prompts), *image.shape[:2]), np.float32), regions)


class CountingMasker(SamMasker):
  def __init__(self, sam):
    super().__init__(sam, device='cpu')
    self.encodes, self.batches = 0, []

  def embed(self, image):
    self.encodes += 1
    return super().embed(image)

  def predict_candidates(self, embedding, boxes, points=None):
    self.batches.append(len(boxes))
    return super().predict_candidates(embedding, boxes, points)


@pytest.fixture
def image():
  return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_one_finder_call_one_image_encoding_one_decoder_batch(image):
  finder, masker = SyntheticFinder(), CountingMasker(tiny_sam())
  result = TextSegmenter(finder, masker).segment(image, 'dog, cat ,, dog')
  assert result.prompts == ['dog', 'cat'] and finder.calls == [['dog', 'cat']]
  assert masker.encodes == 1 and masker.batches == [2]
  assert result.heatmaps.shape == (2, 120, 160)
  assert all(inst.label == 'dog' for inst in result.instances)
  for inst in result.instances:
    assert inst.mask.shape == (120, 160) and inst.mask.dtype == bool and inst.mask.any()
    np.testing.assert_array_equal(inst.box, mask_boxes(inst.mask))
  scores = [inst.score for inst in result.instances]
  assert scores == sorted(scores, reverse=True)


def test_box_only_regions_go_to_sam_as_boxes(image):
  masker = CountingMasker(tiny_sam())
  result = TextSegmenter(BoxFinder(), masker).segment(image, 'dog, cap')
  assert masker.encodes == 1 and masker.batches == [1]
  assert [inst.label for inst in result.instances] == ['cap']
  assert 0 < result.instances[0].score <= 0.6  # SAM's predicted IoU x the box's score.


def test_no_match_gives_no_instances_and_skips_sam(image):
  masker = CountingMasker(tiny_sam())
  result = TextSegmenter(SyntheticFinder(), masker).segment(image, ['cat'])
  assert result.instances == [] and masker.encodes == 0


@pytest.mark.parametrize('text', ['', '   ', ' , ,', []])
def test_empty_prompts_are_a_clear_error(text):
  with pytest.raises(ValueError, match='prompt is empty'):
    parse_prompts(text)


def test_bad_image_is_a_clear_error():
  segmenter = TextSegmenter(SyntheticFinder(), None)
  with pytest.raises(ValueError, match='RGB uint8'):
    segmenter.segment(np.zeros((10, 10), np.uint8), 'dog')
