"""SAM 3 (Carion et al. 2025) through transformers: text in, every instance of
each phrase out, with scores that include whether the phrase is present at
all. It finds and outlines in one model, so it is a segmenter, not a finder.

    segmenter = Sam3Segmenter.load('facebook/sam3')        # HF name or local folder
    result = segmenter.segment(image, 'dog, ball')          # image: RGB uint8 [H, W, 3]

The image is encoded once for all phrases (`embed`, a value the caller can
keep and pass to `segment` again); the phrases run as one batch against it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vit_jax.images import check_rgb_uint8
from seg_bridge.loading import load_pretrained, pick_device
from seg_bridge.maskers.candidates import mask_boxes
from seg_bridge.types import (ImageEmbedding, Instance, Segmentation, check_prompt_lengths, parse_prompts,
                              per_prompt)


class Sam3Segmenter:
  """transformers' Sam3Model behind seg_bridge's segmenter interface.

  min_score: an instance is kept where its score (query x presence) reaches
    this (a mapping: per prompt, '*' for the rest); transformers' post-processing
    keeps scores above its threshold, so it is given the float32 just below.
  mask_threshold: the mask probability a pixel needs.
  max_per_prompt: at most this many instances per phrase, the best.
  """

  default_model = 'facebook/sam3'

  def __init__(self, model, processor, device: str | None = None, *,
               min_score: float | Mapping[str, float] = 0.5,
               mask_threshold: float = 0.5, max_per_prompt: int = 16):
    self.device = pick_device(device)
    self.model, self.processor = model.to(self.device).eval(), processor
    self.min_score, self.mask_threshold, self.max_per_prompt = min_score, mask_threshold, max_per_prompt

  @classmethod
  def load(cls, name_or_path: str = default_model, device: str | None = None, **options) -> Sam3Segmenter:
    from transformers import Sam3Model, Sam3Processor
    return cls(load_pretrained(Sam3Model, name_or_path, 'SAM 3 model'),
               load_pretrained(Sam3Processor, name_or_path, 'SAM 3 processor'), device, **options)

  def check_prompts(self, prompts: list[str]) -> None:
    """PromptError where a phrase is longer than SAM 3's text window."""
    check_prompt_lengths(prompts, self.processor.tokenizer, self.model.config.text_config.max_position_embeddings,
                         'SAM 3')

  def embed(self, image: np.ndarray) -> ImageEmbedding:
    """Encodes an RGB uint8 [H, W, 3] image once for any number of phrases."""
    import torch
    check_rgb_uint8(image)
    pixels = self.processor(images=image, return_tensors='pt').pixel_values.to(self.device)
    with torch.inference_mode():
      return ImageEmbedding(self.model.get_vision_features(pixel_values=pixels), tuple(image.shape[:2]))

  def segment(self, image: np.ndarray, prompts: str | list[str],
              embedding: ImageEmbedding | None = None) -> Segmentation:
    import torch
    prompts = parse_prompts(prompts)
    self.check_prompts(prompts)
    embedding = embedding or self.embed(image)
    count, size, floors = len(prompts), embedding.original_size, per_prompt(self.min_score, prompts)
    vision = embedding.features  # Batch 1, seen by every phrase (views, no copies):
    vision = type(vision)(**{k: tuple(t.expand(count, *t.shape[1:]) for t in v) if isinstance(v, tuple) else
                             v.expand(count, *v.shape[1:]) for k, v in vision.items()})
    text = self.processor(text=prompts, return_tensors='pt').to(self.device)
    with torch.inference_mode():
      outputs = self.model(vision_embeds=vision, input_ids=text.input_ids, attention_mask=text.attention_mask)
      results = self.processor.post_process_instance_segmentation(
          outputs, threshold=float(np.nextafter(np.float32(min(floors)), np.float32(-np.inf))),
          mask_threshold=self.mask_threshold, target_sizes=[size] * count)
      heatmaps = torch.nn.functional.interpolate(outputs.semantic_seg.float(), size=size, mode='bilinear',
                                                 align_corners=False)[:, 0].sigmoid().cpu().numpy()  # [P, H, W]
    instances = []
    for label, found, floor in zip(prompts, results, floors):
      best = found['scores'].argsort(descending=True)
      best = best[found['scores'][best] >= floor][:self.max_per_prompt]
      for score, mask in zip(found['scores'][best].tolist(), found['masks'][best].bool().cpu().numpy()):
        if mask.any():
          instances.append(Instance(label, mask, float(score), mask_boxes(mask)))
    instances.sort(key=lambda inst: inst.score, reverse=True)
    return Segmentation(prompts, instances, heatmaps)
