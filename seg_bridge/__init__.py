"""Text-prompted segmentation: a finder (CLIPSeg heatmaps, Grounding DINO
boxes) turns words into regions and a masker (SAM, SAM 2) outlines them, or
SAM 3 does both; numpy in, numpy out.

    import seg_bridge
    segmenter, settings = seg_bridge.build(seg_bridge.Options(finder='clipseg', masker='sam'))
    result = segmenter.segment(image, 'dog, ball')   # uint8 [H, W, 3] -> seg_bridge.Segmentation
    for instance in result.instances:                # label, score, box, mask (bool [H, W])
      ...

segment.py (images), segment_video.py (video, seg_bridge.tracking) and the
web demo (seg_bridge.demo) use the same builder; python -m seg_bridge.evaluate
scores it on labelled images (read_truth, Pair, evaluate_pairs). The names load their
modules on first use: `import seg_bridge` imports neither torch nor JAX.
"""

from __future__ import annotations

from vit_jax import lazy

_PUBLIC = {  # name: (module, attribute)
    'build': ('seg_bridge.build', 'build'),
    'Options': ('seg_bridge.build', 'Options'),
    'Segmentation': ('seg_bridge.types', 'Segmentation'),
    'Instance': ('seg_bridge.types', 'Instance'),
    'PromptError': ('seg_bridge.types', 'PromptError'),
    'ModelNotFoundError': ('seg_bridge.loading', 'ModelNotFoundError'),
    'FINDERS': ('seg_bridge.finders', 'FINDERS'),
    'MASKERS': ('seg_bridge.maskers', 'MASKERS'),
    'read_truth': ('seg_bridge.evaluation.truth', 'read_truth'),
    'Pair': ('seg_bridge.evaluation.metrics', 'Pair'),
    'evaluate_pairs': ('seg_bridge.evaluation.metrics', 'evaluate_pairs'),
}
__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.exports(globals(), _PUBLIC)
