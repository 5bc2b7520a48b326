"""Text-prompted segmentation: a finder (CLIPSeg / Grounding DINO) turns words into
regions, SAM turns regions into masks. Work in progress (issue 3): so far the
heatmap -> prompt logic (`seg_bridge.prompts`)."""
