"""The SAM 2 stage (Ravi et al. 2024), through transformers, with SamMasker's
numpy interface: the image is encoded once, all regions are decoded as one
batch, and the same candidate selection applies.

    masker = Sam2Masker.from_pretrained('facebook/sam2.1-hiera-large')  # HF name or local folder
    masker.set_image(image)                      # uint8 [H, W, 3] RGB
    masks, scores = masker.predict(boxes, points, region_masks)
"""

from __future__ import annotations

import numpy as np

from seg_bridge.images import check_rgb_uint8
from seg_bridge.loading import load_pretrained, pick_device
from seg_bridge.sam import Masker

SAM2_DEFAULT = 'facebook/sam2.1-hiera-large'


class Sam2Masker(Masker):
  """transformers' Sam2Model behind a numpy interface, batched over prompts."""

  def __init__(self, model, processor, device: str | None = None):
    self.device = pick_device(device)
    self.model, self.processor = model.to(self.device).eval(), processor
    self.embeddings, self.original_size = None, None

  @classmethod
  def from_pretrained(cls, name_or_path: str = SAM2_DEFAULT, device: str | None = None) -> Sam2Masker:
    from transformers import Sam2Model, Sam2Processor
    return cls(load_pretrained(Sam2Model, name_or_path, 'SAM 2 model'),
               load_pretrained(Sam2Processor, name_or_path, 'SAM 2 processor'), device)

  def set_image(self, image: np.ndarray) -> None:
    """Encodes an RGB uint8 [H, W, 3] image once for all later predictions."""
    import torch
    check_rgb_uint8(image)
    pixels = self.processor(images=image, return_tensors='pt', input_data_format='channels_last').pixel_values.to(self.device)
    with torch.inference_mode():
      self.embeddings = self.model.get_image_embeddings(pixels)  # Feature maps, coarse to fine resolutions.
    self.original_size = image.shape[:2]

  def predict_candidates(self, boxes: np.ndarray, points: np.ndarray | None = None):
    """boxes [K, 4] xyxy and interior points [K, 2] xy (pixels of the image)
    -> (candidate masks bool [K, 3, H, W], predicted IoU [K, 3])."""
    import torch
    if self.embeddings is None:
      raise RuntimeError('call set_image() before predicting masks.')
    size = [list(self.original_size)]
    prompts = {'input_boxes': [np.asarray(boxes, np.float32).tolist()]}  # [1 image, K, 4]
    if points is not None:  # [1 image, K regions, 1 point, 2], each point positive.
      prompts['input_points'] = [[[point] for point in np.asarray(points, np.float32).tolist()]]
      prompts['input_labels'] = [[[1] for _ in range(len(points))]]
    inputs = self.processor(original_sizes=size, return_tensors='pt', **prompts)
    with torch.inference_mode():
      outputs = self.model(image_embeddings=self.embeddings, multimask_output=True,
                           **{k: inputs[k].to(self.device) for k in prompts})
    masks = self.processor.post_process_masks(outputs.pred_masks.cpu(), size)[0]  # bool [K, 3, H, W]
    return masks.numpy(), outputs.iou_scores[0].float().cpu().numpy()
