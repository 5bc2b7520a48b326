"""Text-prompted segmentation: a finder (CLIPSeg heatmaps, Grounding DINO
boxes) turns words into regions and a masker (SAM, SAM 2) outlines them, or
SAM 3 does both; seg_bridge.build turns options into a segmenter for
segment.py (images), segment_video.py (video, seg_bridge.tracking) and the
web demo (seg_bridge.demo). Shared types: seg_bridge.types."""
