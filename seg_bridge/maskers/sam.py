"""The SAM stage (Kirillov et al. 2023), with segment-anything's model: regions
(box + interior point) -> masks, numpy in and out.

The image is encoded once (`embed`, a value the caller keeps); every region of
every prompt then goes through SAM's prompt encoder and mask decoder as one
batch, and seg_bridge.maskers.candidates picks one of SAM's three candidates.

    masker = SamMasker.load('sam_vit_b_01ec64.pth', model_type='vit_b')
    embedding = masker.embed(image)                          # uint8 [H, W, 3] RGB
    masks, scores = masker.predict(embedding, boxes, points, region_masks)
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from seg_bridge.images import check_rgb_uint8
from seg_bridge.loading import ModelNotFoundError, pick_device, reason
from seg_bridge.maskers.candidates import CandidateMasker
from seg_bridge.types import ImageEmbedding

SAM_CHECKPOINTS = {
    'vit_b': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth',
    'vit_l': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth',
    'vit_h': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth',
}


class SamMasker(CandidateMasker):
  """segment-anything's SAM behind a numpy interface, batched over prompts."""

  default_model = 'sam_vit_b_01ec64.pth'

  def __init__(self, sam, device: str | None = None):
    from segment_anything.utils.transforms import ResizeLongestSide
    self.device = pick_device(device)
    self.model = sam.to(self.device).eval()
    self.transform = ResizeLongestSide(sam.image_encoder.img_size)

  @classmethod
  def load(cls, path: str = default_model, device: str | None = None, *, model_type: str = 'vit_b') -> SamMasker:
    """SAM from an official .pth file (loaded with weights_only, on the CPU first)."""
    import torch
    from segment_anything import sam_model_registry
    if model_type not in SAM_CHECKPOINTS:
      raise ValueError(f'unknown SAM model type {model_type!r}; choose one of {", ".join(SAM_CHECKPOINTS)}.')
    if not os.path.isfile(path):
      raise ModelNotFoundError(f'SAM checkpoint {path!r} not found; download {SAM_CHECKPOINTS[model_type]} '
                               f'and pass its path.')
    sam = sam_model_registry[model_type](checkpoint=None)
    try:
      with warnings.catch_warnings():  # torch's notes on an odd pickle: the error below says what matters.
        warnings.simplefilter('ignore')
        state = torch.load(path, map_location='cpu', weights_only=True)  # Never runs code a pickle may hold.
    except Exception:  # Empty, truncated, not PyTorch, or a pickle of more than tensors: torch's advice does not apply.
      raise ModelNotFoundError(f'{path!r} is not a SAM {model_type} checkpoint: not a readable PyTorch weights file '
                               f'(empty, truncated, or holding more than tensors); download '
                               f'{SAM_CHECKPOINTS[model_type]} again.') from None
    try:
      sam.load_state_dict(state)
    except Exception as e:
      raise ModelNotFoundError(f'{path!r} is not a SAM {model_type} checkpoint ({reason(e)}); check --sam-type, or '
                               f'download {SAM_CHECKPOINTS[model_type]}.') from None
    return cls(sam, device)

  def embed(self, image: np.ndarray) -> ImageEmbedding:
    """Encodes an RGB uint8 [H, W, 3] image (SamPredictor.set_image's steps)."""
    import torch
    check_rgb_uint8(image)
    resized = self.transform.apply_image(image)  # Long side 1024.
    pixels = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
    with torch.inference_mode():
      features = self.model.image_encoder(self.model.preprocess(pixels))  # [1, 256, 64, 64]
    return ImageEmbedding(features, tuple(image.shape[:2]), tuple(resized.shape[:2]))

  def predict_candidates(self, embedding: ImageEmbedding, boxes: np.ndarray, points: np.ndarray | None = None):
    """boxes [K, 4] xyxy and interior points [K, 2] xy (pixels of the image)
    -> (candidate masks bool [K, 3, H, W], predicted IoU [K, 3]), as
    SamPredictor.predict_torch computes them."""
    import torch
    size, sam = embedding.original_size, self.model
    with torch.inference_mode():
      box_t = self.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float32), size).to(self.device)
      point_prompts = None
      if points is not None:
        coords = self.transform.apply_coords_torch(torch.as_tensor(points, dtype=torch.float32)[:, None, :], size)
        point_prompts = (coords.to(self.device), torch.ones(coords.shape[:2], dtype=torch.int, device=self.device))
      sparse, dense = sam.prompt_encoder(points=point_prompts, boxes=box_t, masks=None)
      low_res, iou = sam.mask_decoder(image_embeddings=embedding.features, image_pe=sam.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=True)
      masks = sam.postprocess_masks(low_res, embedding.input_size, size) > sam.mask_threshold
    return masks.cpu().numpy(), iou.float().cpu().numpy()
