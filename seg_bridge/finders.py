"""Finders: text prompts -> where the objects are, as heatmaps at image size.

    finder = ClipSegFinder()                       # CIDAS/clipseg-rd64-refined
    probs = finder.heatmaps(image, ['dog', 'cap'])  # float32 [2, H, W] in [0, 1]

Models load by Hugging Face name (from the HF cache, downloading once when
the network allows) or from a local folder saved with `save_pretrained`.
"""

from __future__ import annotations

import numpy as np

from seg_bridge.sam import ModelNotFoundError, pick_device

CLIPSEG_DEFAULT = 'CIDAS/clipseg-rd64-refined'


def load_pretrained(cls, name_or_path: str, what: str):
  """cls.from_pretrained(name_or_path), or one sentence on what to do."""
  try:
    return cls.from_pretrained(name_or_path)
  except (OSError, ValueError) as e:
    raise ModelNotFoundError(
        f'{what} {name_or_path!r} is neither a local folder nor in the Hugging Face cache, and could not be '
        f'downloaded ({str(e).splitlines()[0][:100]}); run once with network access, or pass the path of a '
        'copy saved with save_pretrained().') from None


class ClipSegFinder:
  """CLIPSeg (Lüddecke & Ecker 2022): one probability heatmap per prompt."""

  def __init__(self, model: str = CLIPSEG_DEFAULT, device: str | None = None):
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
    self.device = pick_device(device)
    self.processor = load_pretrained(CLIPSegProcessor, model, 'CLIPSeg processor')
    self.model = load_pretrained(CLIPSegForImageSegmentation, model, 'CLIPSeg model').to(self.device).eval()

  def heatmaps(self, image: np.ndarray, prompts: list[str]) -> np.ndarray:
    """RGB uint8 [H, W, 3] and P prompts -> probabilities float32 [P, H, W],
    CLIPSeg's square low-resolution logits resized back to the image."""
    import torch
    inputs = self.processor(text=list(prompts), images=[image] * len(prompts), padding=True, return_tensors='pt')
    with torch.inference_mode():
      logits = self.model(**inputs.to(self.device)).logits
      logits = logits.reshape(len(prompts), 1, *logits.shape[-2:])  # [P, 1, h, w]; P = 1 comes back squeezed.
      logits = torch.nn.functional.interpolate(logits.float(), size=image.shape[:2], mode='bilinear',
                                               align_corners=False)
    return torch.sigmoid(logits[:, 0]).cpu().numpy()
