"""seg_bridge heatmap -> SAM prompts, on synthetic heatmaps."""

import numpy as np
import pytest

from seg_bridge.finders.heatmap_regions import heatmap_to_regions, otsu_threshold


def blob(shape, center, radius, value):
  ys, xs = np.mgrid[:shape[0], :shape[1]]
  return value * np.exp(-((ys - center[0]) ** 2 + (xs - center[1]) ** 2) / (2 * radius**2))


def test_two_blobs_give_two_instances_best_first():
  probs = np.maximum(blob((100, 120), (30, 30), 8, 0.9), blob((100, 120), (70, 90), 10, 0.7)) + 0.02
  regions = heatmap_to_regions(probs)
  assert len(regions) == 2
  assert regions[0].score == pytest.approx(0.92, abs=0.01) and regions[1].score == pytest.approx(0.72, abs=0.01)
  for region, (cy, cx) in zip(regions, [(30, 30), (70, 90)]):
    x0, y0, x1, y1 = region.box
    assert x0 < cx < x1 and y0 < cy < y1
    px, py = region.point
    assert abs(px - (cx + 0.5)) <= 1.5 and abs(py - (cy + 0.5)) <= 1.5
    assert region.mask[int(py), int(px)] and region.mask.shape == (100, 120)
  assert not (regions[0].mask & regions[1].mask).any()


@pytest.mark.parametrize('probs', [np.full((50, 50), 0.2), np.zeros((50, 50)), np.full((50, 50), 0.45)])
def test_flat_or_weak_heatmaps_give_nothing(probs):
  assert heatmap_to_regions(probs) == []


def test_weak_noise_does_not_become_instances():
  rng = np.random.default_rng(0)
  probs = rng.uniform(0, 0.35, (80, 80))
  probs += blob((80, 80), (40, 40), 6, 0.6)
  regions = heatmap_to_regions(probs)
  assert len(regions) == 1 and regions[0].mask[40, 40]


def test_point_is_inside_a_non_convex_region():
  probs = np.zeros((60, 60), np.float32)
  probs[10:50, 10:18] = 0.9  # An L shape: its centre of mass lies outside it.
  probs[42:50, 10:50] = 0.9
  (region,) = heatmap_to_regions(probs)
  x, y = region.point.astype(int)
  assert region.mask[y, x]
  ys, xs = np.nonzero(region.mask)
  assert not region.mask[int(ys.mean()), int(xs.mean())]  # Where a centre-of-mass point would have gone.
  np.testing.assert_array_equal(region.box, [10, 10, 50, 50])


def test_tiny_specks_are_dropped_and_fixed_threshold_is_honoured():
  probs = np.zeros((100, 100), np.float32)
  probs[5, 5] = 0.95
  probs[40:60, 40:60] = 0.8
  regions = heatmap_to_regions(probs)
  assert len(regions) == 1 and regions[0].box.tolist() == [40, 40, 60, 60]
  assert heatmap_to_regions(probs, threshold=0.9, min_area_fraction=0)[0].box.tolist() == [5, 5, 6, 6]


def test_otsu_splits_a_bimodal_histogram_between_its_modes():
  values = np.concatenate([np.full(500, 0.1), np.full(300, 0.8)])
  assert 0.1 < otsu_threshold(values) <= 0.8


def test_bad_heatmap_shape_is_an_error():
  with pytest.raises(ValueError, match=r'\[H, W\]'):
    heatmap_to_regions(np.zeros((2, 3, 4)))
