"""Text-prompted segmentation: a finder (CLIPSeg) turns words into regions, SAM
turns regions into masks; see seg_bridge.pipeline.TextSegmenter and segment.py.
Not written yet (issue 3): the Grounding DINO finder, SAM 2, the benchmark."""
