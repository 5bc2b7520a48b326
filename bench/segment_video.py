r"""Seconds per frame and peak memory of video tracking at 50 and 200 frames:
bounded memory means the 200-frame peak is close to the 50-frame one.

    python bench/segment_video.py --out results/segment_video_cpu.json

SAM 2.1 hiera-tiny's video model (transformers' Sam2VideoModel, the real
architecture at --input-size, 1024 as released; random weights: pretrained weights cannot be downloaded here;
the time and memory do not depend on them) follows three objects, prompted
with masks on the first frame, through a synthetic 640x360 video, in
streaming mode, exactly as seg_bridge.tracking.Sam2Tracker runs it; each
frame count runs in its own process, which reports its peak resident memory.
`--no-prune` also runs the session unpruned (transformers' own behaviour) at
the smallest count, to show what pruning saves. The key frames' text
segmenter is left out: its memory does not grow with the video and its time
is bench/segment_prompts.py's.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from record import ROOT, provenance, write_record


def frames(count: int, size=(360, 640)):
  """A synthetic video: three discs moving across a noisy background."""
  h, w = size
  yy, xx = np.mgrid[:h, :w]
  rng = np.random.default_rng(0)
  background = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
  for k in range(count):
    frame = background.copy()
    masks = []
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
      mask = (yy - 90 - 90 * i) ** 2 + (xx - (60 + 2 * k + 150 * i) % w) ** 2 <= 40 ** 2
      frame[mask] = colour
      masks.append(mask)
    yield frame, masks


def child(count: int, prune: bool, input_size: int) -> dict:
  sys.path.insert(0, ROOT)
  import torch
  import transformers
  from transformers.utils import logging as hf_logging

  from seg_bridge.tracking import Sam2Tracker
  hf_logging.disable_progress_bar()
  torch.manual_seed(0)
  with tempfile.TemporaryDirectory() as folder:
    s = input_size  # 1024 for the released models; hiera-tiny's default architecture otherwise.
    config = transformers.Sam2VideoConfig(
        vision_config=dict(backbone_feature_sizes=[[s // 4] * 2, [s // 8] * 2, [s // 16] * 2]),
        prompt_encoder_config=dict(image_size=s), image_size=s, memory_attention_rope_feat_sizes=[s // 16] * 2)
    transformers.Sam2VideoModel(config).save_pretrained(folder)
    size = {'height': s, 'width': s}
    transformers.Sam2VideoProcessor(image_processor=transformers.Sam2ImageProcessor(size=size),
                                    video_processor=transformers.Sam2VideoVideoProcessor(size=size)).save_pretrained(folder)
    tracker = Sam2Tracker.load(folder, 'cpu')
  if not prune:
    tracker.prune = lambda session, index: None
  loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  session, seconds = tracker.start(), []
  for k, (frame, masks) in enumerate(frames(count)):
    start = time.perf_counter()
    tracker.step(session, k, frame, dict(enumerate(masks, start=1)) if k == 0 else {})
    seconds.append(time.perf_counter() - start)
  return {'frames': count, 'pruned': prune, 'input_size': input_size, 'seconds_per_frame_median': statistics.median(seconds[1:]),
          'first_frame_seconds': seconds[0], 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          'rss_after_loading_mb': loaded_mb, 'torch_threads': torch.get_num_threads(),
          'parameters': sum(p.numel() for p in tracker.model.parameters())}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--frames', default='50,200')
  parser.add_argument('--no-prune', action='store_true')
  parser.add_argument('--input-size', type=int, default=1024,
                      help='The square size SAM 2 sees (1024 for the released models; smaller fits a CPU).')
  parser.add_argument('--out')
  parser.add_argument('--child', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--unpruned-child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(child(args.child, prune=not args.unpruned_child, input_size=args.input_size)))
    return
  started = provenance()
  counts = [int(c) for c in args.frames.split(',')]
  runs = [(c, True) for c in counts] + ([(min(counts), False)] if args.no_prune else [])
  results = []
  for count, prune in runs:
    command = [sys.executable, os.path.abspath(__file__), '--child', str(count), '--input-size', str(args.input_size),
               *([] if prune else ['--unpruned-child'])]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    r = results[-1]
    print(f'{count:4d} frames{"" if prune else " (unpruned)"}: {r["seconds_per_frame_median"]:.2f} s/frame, '
          f'peak {r["peak_rss_mb"]:.0f} MB (after loading {r["rss_after_loading_mb"]:.0f} MB)')
  if args.out:
    write_record(args.out, started, model=f'SAM 2.1 hiera-tiny video (transformers), random weights, '
                                          f'{args.input_size} px input',
                 video='synthetic 640x360, 3 objects prompted on frame 0', runs=results)


if __name__ == '__main__':
  main()
