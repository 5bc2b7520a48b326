"""Text-prompted segmentation: a finder (CLIPSeg heatmaps or Grounding DINO
boxes) turns words into regions, SAM or SAM 2 turns regions into masks; see
seg_bridge.pipeline.TextSegmenter and segment.py."""
