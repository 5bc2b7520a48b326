"""The SAM 2 stage (Ravi et al. 2024), through transformers, with SamMasker's
numpy interface: the image is encoded once, all regions are decoded as one
batch, and the same candidate selection applies.

    masker = Sam2Masker.load('facebook/sam2.1-hiera-large')  # HF name or local folder
    embedding = masker.embed(image)                          # uint8 [H, W, 3] RGB
    masks, scores = masker.predict(embedding, boxes, points, region_masks)
"""

from __future__ import annotations

import numpy as np

from vit_jax.images import check_rgb_uint8
from seg_bridge.loading import load_pretrained, pick_device
from seg_bridge.maskers.candidates import CandidateMasker
from seg_bridge.types import ImageEmbedding


class Sam2Masker(CandidateMasker):
  """transformers' Sam2Model behind a numpy interface, batched over prompts."""

  default_model = 'facebook/sam2.1-hiera-large'

  def __init__(self, model, processor, device: str | None = None):
    self.device = pick_device(device)
    self.model, self.processor = model.to(self.device).eval(), processor

  @classmethod
  def load(cls, name_or_path: str = default_model, device: str | None = None) -> Sam2Masker:
    from transformers import Sam2Model, Sam2Processor
    return cls(load_pretrained(Sam2Model, name_or_path, 'SAM 2 model'),
               load_pretrained(Sam2Processor, name_or_path, 'SAM 2 processor'), device)

  def embed(self, image: np.ndarray) -> ImageEmbedding:
    """Encodes an RGB uint8 [H, W, 3] image once for all its predictions."""
    import torch
    check_rgb_uint8(image)
    pixels = self.processor(images=image, return_tensors='pt', input_data_format='channels_last').pixel_values
    with torch.inference_mode():
      features = self.model.get_image_embeddings(pixels.to(self.device))  # Feature maps, coarse to fine.
    return ImageEmbedding(features, tuple(image.shape[:2]))

  def predict_candidates(self, embedding: ImageEmbedding, boxes: np.ndarray, points: np.ndarray | None = None):
    """boxes [K, 4] xyxy and interior points [K, 2] xy (pixels of the image)
    -> (candidate masks bool [K, 3, H, W], predicted IoU [K, 3])."""
    import torch
    size = [list(embedding.original_size)]
    prompts = {'input_boxes': [np.asarray(boxes, np.float32).tolist()]}  # [1 image, K, 4]
    if points is not None:  # [1 image, K regions, 1 point, 2], each point positive.
      prompts['input_points'] = [[[point] for point in np.asarray(points, np.float32).tolist()]]
      prompts['input_labels'] = [[[1] for _ in range(len(points))]]
    inputs = self.processor(original_sizes=size, return_tensors='pt', **prompts)
    with torch.inference_mode():
      outputs = self.model(image_embeddings=embedding.features, multimask_output=True,
                           **{k: inputs[k].to(self.device) for k in prompts})
    masks = self.processor.post_process_masks(outputs.pred_masks.cpu(), size)[0]  # bool [K, 3, H, W]
    return masks.numpy(), outputs.iou_scores[0].float().cpu().numpy()
