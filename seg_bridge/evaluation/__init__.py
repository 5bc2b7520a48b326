"""Scoring segmentation on labelled images (python -m seg_bridge.evaluate).

    truth = read_truth('labels/instances.json')             # or a folder of NAME.jpg + NAME/LABEL.png
    pairs = [...]                                            # metrics.Pair per (image, prompt)
    evaluate_pairs(pairs, truth.prompts)['*']['cgF1']

truth: ground truth readers; metrics: gIoU, cIoU, AP, presence, cgF1;
sweep: each image's candidates once for a grid of thresholds, cached;
predictions: past runs as candidates; scoring: metrics per grid point and
the calibration's choice; calibrate: the grid, the choice and the settings
file; report: metrics.json, metrics.md, plots/, worst/.
"""

from seg_bridge.evaluation.metrics import Pair, evaluate_pairs
from seg_bridge.evaluation.truth import LabelledImage, Truth, TruthError, read_truth

__all__ = ['LabelledImage', 'Pair', 'Truth', 'TruthError', 'evaluate_pairs', 'read_truth']
