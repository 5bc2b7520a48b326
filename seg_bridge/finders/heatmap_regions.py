"""From a finder's heatmap to SAM prompts: one box and one point per instance.

The write-ups thresholded CLIPSeg at a fixed 0.5 and gave SAM one centre-of-
mass point: empty masks on weak matches, noise on strong ones, one instance
where there were several, and a point that can fall outside a non-convex
object. Here:
  - the threshold adapts to the heatmap (Otsu's, never below `min_threshold`);
  - connected components become separate instances, tiny ones are dropped;
  - each instance gets its box and the interior point farthest from its
    border (always inside it);
  - a heatmap with no confident peak gives no instance at all.

    regions = heatmap_to_regions(probs)   # probs: float [H, W] in [0, 1]
"""

from __future__ import annotations

import numpy as np

from seg_bridge.types import Region


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
  """Threshold in [0, 1] that best separates `values` into two classes."""
  hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
  centers = (edges[:-1] + edges[1:]) / 2
  weight_low = np.cumsum(hist)
  weight_high = weight_low[-1] - weight_low
  mean_low = np.cumsum(hist * centers) / np.maximum(weight_low, 1)
  mean_high = ((hist * centers).sum() - np.cumsum(hist * centers)) / np.maximum(weight_high, 1)
  between = weight_low * weight_high * (mean_low - mean_high) ** 2
  return float(edges[np.argmax(between) + 1])


def heatmap_to_regions(probs: np.ndarray, *, threshold: float | None = None, min_threshold: float = 0.3,
                       min_peak: float = 0.5, min_area_fraction: float = 0.0005,
                       max_regions: int = 16) -> list[Region]:
  """Instances of a probability heatmap [H, W], best first.

  threshold: a fixed threshold, or None for Otsu's (clipped to >= min_threshold).
  min_peak: a region whose highest probability is below this is not a match.
  min_area_fraction: regions smaller than this fraction of the image are noise.
  """
  from scipy import ndimage  # On use: a second's import for the command line's --help.
  probs = np.asarray(probs, np.float32)
  if probs.ndim != 2:
    raise ValueError(f'heatmap must be [H, W], got shape {probs.shape}.')
  if probs.size == 0 or float(probs.max()) < min_peak:
    return []
  if threshold is None:
    threshold = max(otsu_threshold(probs), min_threshold)
  labels, count = ndimage.label(probs >= threshold, structure=np.ones((3, 3), bool))
  min_area = max(1, int(min_area_fraction * probs.size))
  regions = []
  for index, bbox in enumerate(ndimage.find_objects(labels), start=1):
    mask = labels[bbox] == index
    peak = float(probs[bbox][mask].max())
    if mask.sum() < min_area or peak < min_peak:
      continue
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    full = np.zeros(probs.shape, bool)
    full[bbox] = mask
    ys, xs = bbox
    regions.append(Region(
        mask=full,
        box=np.array([xs.start, ys.start, xs.stop, ys.stop], np.float32),
        point=np.array([xs.start + x + 0.5, ys.start + y + 0.5], np.float32),
        score=peak))
  regions.sort(key=lambda r: r.score, reverse=True)
  return regions[:max_regions]
