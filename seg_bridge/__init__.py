"""Text-prompted segmentation: a finder (CLIPSeg) turns words into regions, SAM
turns regions into masks; see seg_bridge.pipeline.TextSegmenter. Work in
progress (issue 3): Grounding DINO and segment.py are not written yet."""
