"""What seg_bridge's parts exchange: regions a finder found, an image encoded
by a masker, instances and a segmentation; the prompt error; and the three
roles, as protocols:

    Finder:    find(image, prompts) -> Found            (text -> regions)
    Masker:    embed(image) -> ImageEmbedding            (the image, encoded once)
               predict(embedding, boxes, points, region_masks) -> (masks, scores)
    Segmenter: segment(image, prompts) -> Segmentation   (text -> instances)

Images are RGB uint8 [H, W, 3] numpy arrays; boxes xyxy pixels, float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np


class PromptError(ValueError):
  """The prompts cannot be used: empty, or too long or unreadable for the model."""


def parse_prompts(text: str | list[str]) -> list[str]:
  """'skateboard, cap' or ['skateboard', 'cap'] -> ['skateboard', 'cap']."""
  parts = text.split(',') if isinstance(text, str) else list(text)
  prompts = list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
  if not prompts:
    raise PromptError('the prompt is empty: give one or more words, e.g. --prompt "dog" or "skateboard, cap".')
  return prompts


def per_prompt(value, prompts: list[str]) -> list:
  """A setting for each prompt: `value` itself, or, from a mapping (a
  calibrated settings file), the prompt's own entry, else its '*' entry."""
  if isinstance(value, Mapping):
    return [value[p] if p in value else value['*'] for p in prompts]
  return [value] * len(prompts)


def check_prompt_lengths(prompts: list[str], tokenizer, limit: int, reader: str) -> None:
  """PromptError where a prompt has more tokens than `reader` (a model's name) reads."""
  for prompt in prompts:
    length = len(tokenizer(prompt)['input_ids'])
    if length > limit:
      raise PromptError(f'the prompt {prompt[:40]!r}... is {length} tokens long; {reader} reads at most {limit}: '
                        'shorten it.')


@dataclasses.dataclass(frozen=True)
class Region:
  """One instance a finder found, in pixel coordinates of the image. Boxes
  come from every finder; points and masks from heatmap finders only."""

  box: np.ndarray  # float32 [4], xyxy, pixel edges (x1, y1 exclusive like SAM's boxes)
  score: float  # the finder's confidence: peak probability inside the region, or the box's score
  point: np.ndarray | None = None  # float32 [2], xy of the pixel centre deepest inside the mask
  mask: np.ndarray | None = None  # bool [H, W], the region's pixels


@dataclasses.dataclass(frozen=True)
class Found:
  heatmaps: np.ndarray  # float32 [P, H, W] in [0, 1]: the finder's view, for inspection.
  regions: list[list[Region]]  # Per prompt, best first; empty where the prompt matched nothing.


@dataclasses.dataclass(frozen=True)
class ImageEmbedding:
  """An image as a masker encoded it: a value, so one loaded model can serve
  many images (requests, video frames) at once."""

  features: Any  # The masker's own (torch tensors).
  original_size: tuple[int, int]  # (H, W) of the image.
  input_size: tuple[int, int] | None = None  # (H, W) the model saw, where the masker resizes itself.


@dataclasses.dataclass(frozen=True)
class Instance:
  label: str  # The prompt that found it.
  mask: np.ndarray  # bool [H, W]
  score: float  # The masker's predicted IoU x the finder's confidence (or the segmenter's own score).
  box: np.ndarray  # float32 [4], xyxy pixels, of the mask.
  finder_score: float | None = None  # What --min-score is compared with, where not `score` itself: the finder's.

  @property
  def confidence(self) -> float:
    """What --min-score was compared with."""
    return self.score if self.finder_score is None else self.finder_score


@dataclasses.dataclass(frozen=True)
class Segmentation:
  prompts: list[str]
  instances: list[Instance]  # Best first.
  heatmaps: np.ndarray  # float32 [P, H, W]: per prompt, the model's view of where it is.


class Finder(Protocol):
  default_model: str

  def check_prompts(self, prompts: list[str]) -> object: ...  # PromptError where they do not fit the model.

  def find(self, image: np.ndarray, prompts: list[str]) -> Found: ...


class Masker(Protocol):
  default_model: str

  def embed(self, image: np.ndarray) -> ImageEmbedding: ...

  def predict(self, embedding: ImageEmbedding, boxes: np.ndarray, points: np.ndarray | None = None,
              region_masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class Segmenter(Protocol):
  def check_prompts(self, prompts: list[str]) -> object: ...

  def segment(self, image: np.ndarray, prompts: str | list[str]) -> Segmentation: ...
