"""seg_bridge's SAM stage against segment-anything's own SamPredictor, on a
tiny randomly initialised SAM built here (no downloads)."""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
segment_anything = pytest.importorskip('segment_anything')

from segment_anything import SamPredictor  # noqa: E402

from seg_bridge.loading import ModelNotFoundError  # noqa: E402
from seg_bridge.maskers.candidates import box_iou, mask_boxes, mask_iou, select_masks  # noqa: E402
from seg_bridge.maskers.sam import SamMasker  # noqa: E402
from seg_tiny import tiny_sam  # noqa: E402


@pytest.fixture(scope='module')
def image():
  return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_batched_prompts_give_the_masks_of_samppredictor_one_by_one(image):
  sam = tiny_sam()
  masker = SamMasker(sam, device='cpu')
  embedding = masker.embed(image)
  boxes = np.array([[10, 20, 80, 100], [90, 5, 150, 60], [0, 0, 160, 120]], np.float32)
  points = np.array([[40, 60], [120, 30], [80, 60]], np.float32)
  candidates, predicted_iou = masker.predict_candidates(embedding, boxes, points)
  assert candidates.shape == (3, 3, 120, 160) and candidates.dtype == bool

  reference = SamPredictor(sam)
  reference.set_image(image)
  for k in range(3):
    masks, iou, _ = reference.predict(point_coords=points[k:k + 1], point_labels=np.array([1]), box=boxes[k],
                                      multimask_output=True)
    np.testing.assert_allclose(predicted_iou[k], iou, atol=1e-4)
    assert (candidates[k] != masks).mean() < 1e-3  # Same masks up to pixels on the 0-logit boundary.


def test_selection_prefers_masks_that_agree_with_the_finder():
  candidates = np.zeros((1, 3, 10, 10), bool)
  candidates[0, 0, :5] = True  # Top half.
  candidates[0, 1] = True  # Everything.
  candidates[0, 2, :5, :5] = True  # A quarter.
  region = np.zeros((1, 10, 10), bool)
  region[0, :5] = True
  predicted_iou = np.array([[0.8, 0.9, 0.85]])
  masks, scores = select_masks(candidates, predicted_iou, np.array([[0, 0, 10, 10]]), region)
  np.testing.assert_array_equal(masks[0], candidates[0, 0])
  assert scores[0] == pytest.approx(0.8)
  assert mask_iou(candidates[0, 2], region[0]) == pytest.approx(0.5)
  # A detector's box only: the candidate whose own box fits the prompt box.
  for box, expected in [([0, 0, 10, 5], 0), ([0, 0, 10, 10], 1), ([0, 0, 5, 5], 2)]:
    masks, _ = select_masks(candidates, predicted_iou, np.array([box], np.float32))
    np.testing.assert_array_equal(masks[0], candidates[0, expected])


def test_mask_boxes_and_box_iou():
  masks = np.zeros((2, 3, 8, 10), bool)
  masks[0, 0, 2:5, 3:7] = True
  masks[1, 2, 7, 9] = True
  boxes = mask_boxes(masks)
  assert boxes.shape == (2, 3, 4) and boxes.dtype == np.float32
  np.testing.assert_array_equal(boxes[0, 0], [3, 2, 7, 5])
  np.testing.assert_array_equal(boxes[1, 2], [9, 7, 10, 8])
  np.testing.assert_array_equal(boxes[0, 1], [0, 0, 0, 0])  # Empty.
  assert box_iou(np.array([0, 0, 4, 4.]), np.array([2, 0, 6, 4.])) == pytest.approx(8 / 24)
  assert box_iou(np.array([0, 0, 1, 1.]), np.array([2, 2, 3, 3.])) == 0


def test_no_regions_give_no_masks_and_bad_images_are_rejected(image):
  masker = SamMasker(tiny_sam(), device='cpu')
  masks, scores = masker.predict(masker.embed(image), np.zeros((0, 4)))
  assert masks.shape == (0, 120, 160) and scores.shape == (0,)
  with pytest.raises(ValueError, match='RGB uint8'):
    masker.embed(image.astype(np.float32))


def test_one_masker_serves_several_images_at_once(image):
  """The embedding is a value: predictions for two images interleave freely."""
  masker = SamMasker(tiny_sam(), device='cpu')
  other = np.ascontiguousarray(image[::-1, ::-1])
  boxes = np.array([[10, 20, 80, 100]], np.float32)
  alone = [masker.predict(masker.embed(x), boxes)[0] for x in (image, other)]
  first, second = masker.embed(image), masker.embed(other)
  np.testing.assert_array_equal(masker.predict(second, boxes)[0], alone[1])
  np.testing.assert_array_equal(masker.predict(first, boxes)[0], alone[0])


def test_missing_or_wrong_checkpoint_is_one_sentence(tmp_path):
  with pytest.raises(ModelNotFoundError, match='not found; download https://'):
    SamMasker.load(str(tmp_path / 'sam_vit_b.pth'), model_type='vit_b')
  wrong = tmp_path / 'tiny.pth'
  torch.save(tiny_sam().state_dict(), wrong)
  with pytest.raises(ModelNotFoundError, match='is not a SAM vit_b checkpoint'):
    SamMasker.load(str(wrong), model_type='vit_b')


@pytest.mark.slow  # Builds and runs a full-size ViT-B SAM on the CPU (about 20 s).
def test_official_checkpoint_layout_loads_through_the_real_path(tmp_path, image):
  from segment_anything import sam_model_registry
  path = tmp_path / 'sam_vit_b_random.pth'
  torch.save(sam_model_registry['vit_b'](checkpoint=None).state_dict(), path)  # Real ViT-B shapes, random weights.
  masker = SamMasker.load(str(path), 'cpu', model_type='vit_b')
  assert masker.device == 'cpu'
  masks, scores = masker.predict(masker.embed(image), np.array([[10, 20, 80, 100]], np.float32), np.array([[40, 60]], np.float32))
  assert masks.shape == (1, 120, 160) and np.isfinite(scores).all()
