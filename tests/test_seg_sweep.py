"""The sweep's shortcut is exact: an image segmented once at the lowest
min-score (CLIPSeg: its heatmaps and SAM's encoding once, regions per
threshold), then filtered, gives at every grid point the instances a
segmenter built at that point gives. And per-prompt settings (a calibration's
file) act as each prompt's own."""

import numpy as np
import pytest

pytest.importorskip('segment_anything')
pytest.importorskip('pycocotools')

from seg_bridge.evaluation.sweep import candidates, threshold_key  # noqa: E402
from seg_bridge.finders.clipseg import ClipSegFinder  # noqa: E402
from seg_bridge.finders.grounding_dino import GroundingDinoFinder  # noqa: E402
from seg_bridge.maskers.sam import SamMasker  # noqa: E402
from seg_bridge.pipeline import TextSegmenter  # noqa: E402
from seg_bridge.segmenters.sam3 import Sam3Segmenter  # noqa: E402
from seg_tiny import tiny_sam  # noqa: E402

PROMPTS = ['dog', 'cap']


@pytest.fixture(scope='module')
def image():
  return np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8)


def same_instances(swept, direct):
  assert [i.label for i in swept] == [i.label for i in direct]
  for a, b in zip(swept, direct):
    assert a.score == pytest.approx(b.score, abs=1e-5) and a.confidence == pytest.approx(b.confidence, abs=1e-6)
    assert (a.mask != b.mask).mean() < 1e-3  # Batches of other sizes may round a logit on a mask's edge apart.


def check_sweep(make, image, min_scores, thresholds):
  found = candidates(make(min_scores[0], None), image, PROMPTS, thresholds)
  checked = 0
  for t in thresholds or (None,):
    for m in min_scores:
      swept = [i for i in found[threshold_key(t)] if i.confidence >= m]
      direct = make(m, t).segment(image, PROMPTS).instances
      same_instances(swept, direct)
      checked += bool(direct)
  assert checked >= 2, 'the grid should find something at several points'


def test_clipseg_and_sam(clipseg_dir, image):
  sam = tiny_sam()

  def make(min_score, threshold):
    return TextSegmenter(ClipSegFinder(clipseg_dir, 'cpu', threshold=threshold, min_score=min_score),
                         SamMasker(sam, 'cpu'))
  heatmaps = make(0.0, None).finder.heatmaps(image, PROMPTS)
  middle = float(np.median(heatmaps))
  check_sweep(make, image, [0.0, middle, float(np.quantile(heatmaps, 0.99))], (None, 0.0, middle))


def test_grounding_dino_and_sam(dino_dir, image):
  sam = tiny_sam()

  def make(min_score, threshold):
    return TextSegmenter(GroundingDinoFinder(dino_dir, 'cpu', min_score=min_score, max_per_prompt=4),
                         SamMasker(sam, 'cpu'))
  _, scores, _ = make(0.0, None).finder.detect(image, PROMPTS)
  check_sweep(make, image, [0.0, float(np.median(scores)), float(scores.max())], (None,))


def test_sam3(sam3_dir, image):
  def make(min_score, threshold):
    return Sam3Segmenter.load(sam3_dir, 'cpu', min_score=min_score)
  scores = sorted(i.score for i in make(0.0, None).segment(image, PROMPTS).instances)
  check_sweep(make, image, [0.0, scores[len(scores) // 2], scores[-1]], (None,))


def test_per_prompt_settings_act_as_each_prompts_own(clipseg_dir, dino_dir, sam3_dir, image):
  sam = tiny_sam()
  by_min_score = {
      'grounding-dino': lambda v: TextSegmenter(GroundingDinoFinder(dino_dir, 'cpu', min_score=v), SamMasker(sam, 'cpu')),
      'sam3': lambda v: Sam3Segmenter.load(sam3_dir, 'cpu', min_score=v),
  }
  for make in by_min_score.values():  # A prompt's min-score filters its own instances only.
    everything = make(0.0).segment(image, PROMPTS).instances
    values = sorted(i.confidence for i in everything)
    floors = {'dog': values[0], 'cap': values[len(values) // 2]}
    expected = [i for i in everything if i.confidence >= floors[i.label]]
    same_instances(make({'dog': floors['dog'], '*': floors['cap']}).segment(image, PROMPTS).instances, expected)

  def clipseg(threshold):  # A prompt's threshold shapes its own regions: as if it ran alone.
    return TextSegmenter(ClipSegFinder(clipseg_dir, 'cpu', threshold=threshold, min_score=0.0), SamMasker(sam, 'cpu'))
  alone = clipseg(0.0).segment(image, ['dog']).instances + clipseg(0.5).segment(image, ['cap']).instances
  together = clipseg({'dog': 0.0, '*': 0.5}).segment(image, PROMPTS).instances
  assert {i.label for i in alone} == {'dog', 'cap'}
  same_instances(sorted(together, key=lambda i: -i.score), sorted(alone, key=lambda i: -i.score))
