"""CLIPSeg (Lüddecke & Ecker 2022) as a finder: a probability heatmap per
prompt, whose connected components become the regions (each with a box, an
interior point and its pixels; see heatmap_regions). All prompts run in one
batch, and the image's CLIP encoding is computed once for all of them.

    finder = ClipSegFinder('CIDAS/clipseg-rd64-refined')   # HF name or local folder
    found = finder.find(image, ['dog', 'cap'])            # image: RGB uint8 [H, W, 3]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from seg_bridge.finders.heatmap_regions import heatmap_to_regions
from seg_bridge.loading import load_pretrained, pick_device
from seg_bridge.types import Found, check_prompt_lengths, per_prompt


class ClipSegFinder:
  """CLIPSeg (Lüddecke & Ecker 2022): a probability heatmap per prompt.

  threshold: fixed heatmap threshold, or None for an adaptive one per heatmap.
  min_score: a prompt matches only where its heatmap reaches this probability.
  Either may be a mapping from prompts to values, with '*' for the rest.
  max_per_prompt: at most this many regions per prompt, the most confident.
  """

  default_model = 'CIDAS/clipseg-rd64-refined'

  def __init__(self, model: str = default_model, device: str | None = None, *,
               threshold: float | Mapping[str, float | None] | None = None,
               min_score: float | Mapping[str, float] = 0.5, max_per_prompt: int = 16):
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
    self.device = pick_device(device)
    self.processor = load_pretrained(CLIPSegProcessor, model, 'CLIPSeg processor')
    self.model = load_pretrained(CLIPSegForImageSegmentation, model, 'CLIPSeg model').to(self.device).eval()
    self.threshold, self.min_score, self.max_per_prompt = threshold, min_score, max_per_prompt

  def check_prompts(self, prompts: list[str]) -> None:
    """PromptError where a prompt is longer than CLIP's text window."""
    check_prompt_lengths(prompts, self.processor.tokenizer, self.model.config.text_config.max_position_embeddings,
                         'CLIPSeg')

  def heatmaps(self, image: np.ndarray, prompts: list[str]) -> np.ndarray:
    """RGB uint8 [H, W, 3] and P prompts -> probabilities float32 [P, H, W],
    CLIPSeg's square low-resolution logits resized back to the image.

    Same logits as CLIPSegForImageSegmentation on the image repeated P times,
    but its CLIP vision encoder (most of the cost) runs once, not P times.
    """
    import torch
    self.check_prompts(prompts)
    text = self.processor.tokenizer(list(prompts), padding=True, return_tensors='pt').to(self.device)
    pixels = self.processor.image_processor(images=image, return_tensors='pt', input_data_format='channels_last').pixel_values.to(self.device)
    model = self.model
    with torch.inference_mode():
      vision = model.clip.get_image_features(pixel_values=pixels, output_hidden_states=True)
      activations = [vision.hidden_states[i + 1].expand(len(prompts), -1, -1)  # [P, N, D], views of [1, N, D]
                     for i in model.extract_layers]
      conditions = model.get_conditional_embeddings(  # [P, projection_dim]
          batch_size=len(prompts), input_ids=text.input_ids, attention_mask=text.attention_mask)
      logits = model.decoder(activations, conditions).logits
      logits = logits.reshape(len(prompts), 1, *logits.shape[-2:])  # [P, 1, h, w]; P = 1 comes back squeezed.
      logits = torch.nn.functional.interpolate(logits.float(), size=image.shape[:2], mode='bilinear',
                                               align_corners=False)
    return torch.sigmoid(logits[:, 0]).cpu().numpy()

  def find(self, image: np.ndarray, prompts: list[str]) -> Found:
    return self.regions(self.heatmaps(image, prompts), prompts)

  def regions(self, heatmaps: np.ndarray, prompts: list[str], threshold=None) -> Found:
    """The regions of heatmaps [P, H, W] (at `threshold` in place of the finder's own, where given)."""
    thresholds = per_prompt(self.threshold if threshold is None else threshold, prompts)
    return Found(heatmaps, [heatmap_to_regions(h, threshold=t, min_peak=m, max_regions=self.max_per_prompt)
                            for h, t, m in zip(heatmaps, thresholds, per_prompt(self.min_score, prompts))])
