"""The SAM stage (Kirillov et al. 2023), with segment-anything's model: regions
(box + interior point) -> masks, numpy in and out.

The image is encoded once (`embed`, a value the caller keeps); every region of
every prompt then goes through SAM's prompt encoder and mask decoder as one
batch, and seg_bridge.maskers.candidates picks one of SAM's three candidates.

    masker = SamMasker.load(model_type='vit_b')   # the official weights, downloaded once; or a .pth path
    embedding = masker.embed(image)                          # uint8 [H, W, 3] RGB
    masks, scores = masker.predict(embedding, boxes, points, region_masks)
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from seg_bridge.loading import ModelNotFoundError, pick_device, reason
from seg_bridge.maskers.candidates import CandidateMasker
from seg_bridge.types import ImageEmbedding
from vit_jax import download
from vit_jax.images import check_rgb_uint8

SAM_CHECKPOINTS = {  # The official files: URL, and the SHA-256 of the whole file (the 6 hex digits in a name are not).
    'vit_b': ('https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth',
              'ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912'),
    'vit_l': ('https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth',
              '3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622'),
    'vit_h': ('https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth',
              'a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e'),
}
MIRROR = 'SEG_BRIDGE_SAM_MIRROR'  # Environment: a URL folder holding the same file names (a mirror, a proxy).


def official_path(model_type: str) -> str:
  """Where the official checkpoint of `model_type` is kept: torch.hub's
  checkpoint folder (~/.cache/torch/hub/checkpoints)."""
  import torch
  return os.path.join(torch.hub.get_dir(), 'checkpoints', SAM_CHECKPOINTS[model_type][0].rsplit('/', 1)[-1])


def official_checkpoint(model_type: str) -> str:
  """official_path(model_type), downloaded there on first use, with a
  progress bar, and checked against its SHA-256; ModelNotFoundError offline."""
  url, sha256 = SAM_CHECKPOINTS[model_type]
  path = official_path(model_type)
  folder, name = os.path.split(path)
  if os.environ.get(MIRROR):
    url = os.environ[MIRROR].rstrip('/') + '/' + name
  if not os.path.isfile(path):
    print(f'Downloading the SAM {model_type} checkpoint (once) from {url} to {folder!r}', file=sys.stderr)
    try:
      os.makedirs(folder, exist_ok=True)
      download.fetch_file(url, path, sha256=sha256)
    except OSError as e:  # DownloadError included: offline, refused, too slow, damaged.
      raise ModelNotFoundError(f'the SAM {model_type} checkpoint is not in {folder!r} and cannot be downloaded '
                               f'({e.strerror or e}); put {name} there, or pass --sam-checkpoint PATH.') from None
  return path


class SamMasker(CandidateMasker):
  """segment-anything's SAM behind a numpy interface, batched over prompts."""

  default_model = None  # The official checkpoint of the model type, downloaded on first use.

  def __init__(self, sam, device: str | None = None, checkpoint: str | None = None):
    from segment_anything.utils.transforms import ResizeLongestSide
    self.device = pick_device(device)
    self.model = sam.to(self.device).eval()
    self.transform = ResizeLongestSide(sam.image_encoder.img_size)
    self.checkpoint = checkpoint  # The .pth file it was loaded from.

  @classmethod
  def load(cls, path: str | None = None, device: str | None = None, *, model_type: str = 'vit_b') -> SamMasker:
    """SAM from an official .pth file (loaded with weights_only, on the CPU
    first); `path` None: the official one, from the cache or downloaded."""
    import torch
    from segment_anything import sam_model_registry
    if model_type not in SAM_CHECKPOINTS:
      raise ValueError(f'unknown SAM model type {model_type!r}; choose one of {", ".join(SAM_CHECKPOINTS)}.')
    url = SAM_CHECKPOINTS[model_type][0]
    path = path or official_checkpoint(model_type)
    if not os.path.isfile(path):
      raise ModelNotFoundError(f'SAM checkpoint {path!r} not found; download {url} and pass its path, or leave '
                               '--sam-checkpoint out to download it.')
    sam = sam_model_registry[model_type](checkpoint=None)
    try:
      with warnings.catch_warnings():  # torch's notes on an odd pickle: the error below says what matters.
        warnings.simplefilter('ignore')
        state = torch.load(path, map_location='cpu', weights_only=True)  # Never runs code a pickle may hold.
    except Exception:  # Empty, truncated, not PyTorch, or a pickle of more than tensors: torch's advice does not apply.
      raise ModelNotFoundError(f'{path!r} is not a SAM {model_type} checkpoint: not a readable PyTorch weights file '
                               f'(empty, truncated, or holding more than tensors); download '
                               f'{url} again.') from None
    try:
      sam.load_state_dict(state)
    except Exception as e:
      raise ModelNotFoundError(f'{path!r} is not a SAM {model_type} checkpoint ({reason(e)}); check --sam-type, or '
                               f'download {url}.') from None
    return cls(sam, device, checkpoint=path)

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
