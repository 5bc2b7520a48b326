"""seg_bridge's SAM 2 stage against transformers' own Sam2Model forward, on a
tiny randomly initialised SAM 2 saved and loaded back by path (no downloads)."""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from seg_bridge import loading  # noqa: E402
from seg_bridge.loading import ModelNotFoundError  # noqa: E402
from seg_bridge.maskers.sam2 import Sam2Masker  # noqa: E402
from seg_tiny import save_tiny_sam2  # noqa: E402


@pytest.fixture(scope='module')
def masker(tmp_path_factory):
  return Sam2Masker.load(save_tiny_sam2(tmp_path_factory.mktemp('sam2')), device='cpu')


@pytest.fixture(scope='module')
def image():
  return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_batched_prompts_give_the_masks_of_the_model_one_by_one(masker, image):
  embedding = masker.embed(image)
  boxes = np.array([[10, 20, 80, 100], [90, 5, 150, 60], [0, 0, 160, 120]], np.float32)
  points = np.array([[40, 60], [120, 30], [80, 60]], np.float32)
  candidates, predicted_iou = masker.predict_candidates(embedding, boxes, points)
  assert candidates.shape == (3, 3, 120, 160) and candidates.dtype == bool
  assert predicted_iou.shape == (3, 3)
  for k in range(3):  # The model's own forward from pixels, one region at a time.
    inputs = masker.processor(images=image, input_boxes=[[boxes[k].tolist()]], input_points=[[[points[k].tolist()]]],
                              input_labels=[[[1]]], return_tensors='pt')
    with torch.inference_mode():
      outputs = masker.model(pixel_values=inputs.pixel_values, input_boxes=inputs.input_boxes,
                             input_points=inputs.input_points, input_labels=inputs.input_labels)
    masks = masker.processor.post_process_masks(outputs.pred_masks, inputs.original_sizes)[0][0].numpy()
    np.testing.assert_allclose(predicted_iou[k], outputs.iou_scores[0, 0].numpy(), atol=1e-4)
    assert (candidates[k] != masks).mean() < 1e-3  # Same masks up to pixels on the 0-logit boundary.


def test_boxes_alone_and_selection(masker, image):
  embedding = masker.embed(image)
  boxes = np.array([[10, 20, 80, 100], [90, 5, 150, 60]], np.float32)
  masks, scores = masker.predict(embedding, boxes)
  assert masks.shape == (2, 120, 160) and masks.dtype == bool and scores.shape == (2,)
  empty, no_scores = masker.predict(embedding, np.zeros((0, 4), np.float32))
  assert empty.shape == (0, 120, 160) and no_scores.shape == (0,)


def test_bad_images_are_clear_errors(masker):
  with pytest.raises(ValueError, match='RGB uint8'):
    masker.embed(np.zeros((10, 10, 4), np.uint8))


def test_missing_model_is_one_sentence(tmp_path, monkeypatch):
  monkeypatch.setattr(loading, 'hub_reachable', lambda: False)  # As on a machine without network.
  with pytest.raises(ModelNotFoundError, match='SAM 2 model .* is neither a local folder nor in the Hugging Face'):
    Sam2Masker.load('no-such-org/no-sam2', device='cpu')
