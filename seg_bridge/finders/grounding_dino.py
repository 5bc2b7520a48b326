"""Grounding DINO (Liu et al. 2023) as a finder: scored boxes for the phrases
of one caption. The prompts are joined into one caption, 'dog. a skateboard.',
so the model runs once; each box goes to the prompt whose tokens it matches
best. Its regions are boxes only; its heatmap is, per pixel, the best score
of a kept box covering it.

    finder = GroundingDinoFinder('IDEA-Research/grounding-dino-tiny')
    found = finder.find(image, ['dog', 'cap'])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from seg_bridge.loading import load_pretrained, pick_device
from seg_bridge.types import Found, PromptError, Region, per_prompt


def phrase_spans(offsets: list[tuple[int, int]], char_spans: list[tuple[int, int]]) -> list[list[int]]:
  """Token offsets [(start, end)] and each phrase's character span -> the
  indices of each phrase's tokens."""
  return [[t for t, (start, end) in enumerate(offsets) if end > start and start >= lo and end <= hi]
          for lo, hi in char_spans]


def box_heatmaps(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, count: int,
                 size: tuple[int, int]) -> np.ndarray:
  """Per label, the best score of a box covering each pixel: float32 [count, H, W]."""
  heatmaps = np.zeros((count, *size), np.float32)
  for (x0, y0, x1, y1), score, label in zip(np.round(boxes).astype(int), scores, labels):
    window = heatmaps[label, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    np.maximum(window, score, out=window)
  return heatmaps


class GroundingDinoFinder:
  """Grounding DINO: scored boxes, per prompt.

  min_score: a box is kept where its best prompt's token probability reaches
    this (a mapping: per prompt, '*' for the rest).
  nms_iou: of two boxes of one prompt overlapping more than this, the weaker goes.
  """

  default_model = 'IDEA-Research/grounding-dino-tiny'

  def __init__(self, model: str = default_model, device: str | None = None, *,
               min_score: float | Mapping[str, float] = 0.35,
               nms_iou: float = 0.7, max_per_prompt: int = 16):
    from transformers import AutoProcessor, GroundingDinoForObjectDetection
    self.device = pick_device(device)
    self.processor = load_pretrained(AutoProcessor, model, 'Grounding DINO processor')
    self.model = load_pretrained(GroundingDinoForObjectDetection, model, 'Grounding DINO model').to(self.device).eval()
    self.min_score, self.nms_iou, self.max_per_prompt = min_score, nms_iou, max_per_prompt

  def caption(self, prompts: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text the model reads, lower case with a period after each phrase,
    and each prompt's character span in it."""
    caption, spans = '', []
    for prompt in prompts:
      phrase = prompt.lower()
      spans.append((len(caption), len(caption) + len(phrase)))
      caption += phrase + '. '
    return caption.strip(), spans

  def check_prompts(self, prompts: list[str]) -> list[list[int]]:
    """Each prompt's token indices in the caption; PromptError where a prompt
    has no readable words or all together exceed the model's text length."""
    caption, char_spans = self.caption(prompts)
    tokens = self.processor.tokenizer(caption, return_offsets_mapping=True)
    spans = phrase_spans(tokens['offset_mapping'], char_spans)
    if not all(spans):
      raise PromptError(f'Grounding DINO reads no words in {prompts[spans.index([])]!r}; use letters or digits.')
    limit = self.model.config.max_text_len
    if len(tokens['input_ids']) > limit:
      raise PromptError(f'the prompts are {len(tokens["input_ids"])} tokens long; Grounding DINO reads at most '
                       f'{limit}: give fewer or shorter prompts.')
    return spans

  def detect(self, image: np.ndarray, prompts: list[str]):
    """-> boxes float32 [K, 4] xyxy pixels, scores [K], prompt indices [K]; best first."""
    import torch
    from torchvision.ops import batched_nms
    spans = self.check_prompts(prompts)
    caption, _ = self.caption(prompts)
    inputs = self.processor(images=image, text=caption, return_tensors='pt', input_data_format='channels_last').to(self.device)
    with torch.inference_mode():
      outputs = self.model(**inputs)
    probs = outputs.logits[0].float().sigmoid().cpu()  # [Q, max_text_len]
    prompt_probs = torch.stack([probs[:, span].max(dim=1).values for span in spans], dim=1)  # [Q, P]
    scores, labels = prompt_probs.max(dim=1)
    h, w = image.shape[:2]
    cx, cy, bw, bh = (outputs.pred_boxes[0].float().cpu() * torch.tensor([w, h, w, h])).unbind(-1)
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
    boxes = boxes.clamp(min=torch.zeros(4), max=torch.tensor([w, h, w, h], dtype=torch.float32))
    floors = torch.tensor(per_prompt(self.min_score, prompts), dtype=scores.dtype)[labels]
    keep = torch.nonzero((scores >= floors) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[:, 0]
    keep = keep[batched_nms(boxes[keep], scores[keep], labels[keep], self.nms_iou)]  # Sorted by score.
    keep = torch.cat([keep[labels[keep] == p][:self.max_per_prompt] for p in range(len(prompts))])
    keep = keep[scores[keep].argsort(descending=True)]
    return boxes[keep].numpy(), scores[keep].numpy(), labels[keep].numpy()

  def find(self, image: np.ndarray, prompts: list[str]) -> Found:
    boxes, scores, labels = self.detect(image, prompts)
    regions = [[] for _ in prompts]
    for box, score, label in zip(boxes, scores, labels):
      regions[label].append(Region(box=box.astype(np.float32), score=float(score)))
    return Found(box_heatmaps(boxes, scores, labels, len(prompts), image.shape[:2]), regions)
