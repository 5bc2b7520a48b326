"""Segmenters that read the text themselves (no separate finder and masker).

    segmenter = SEGMENTERS['sam3'].load('facebook/sam3')
    result = segmenter.segment(image, 'dog, ball')

A new one is one module with a class that has `default_model`, a `load`
classmethod, `check_prompts` and `segment`, and one line here. The builder
(seg_bridge.build) offers them beside the finders: `--finder sam3`.
"""

from seg_bridge.segmenters.sam3 import Sam3Segmenter

SEGMENTERS = {'sam3': Sam3Segmenter}
