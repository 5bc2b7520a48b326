r"""Wall time of text-prompted segmentation of one image: 1 prompt, 5 prompts,
and the write-ups' way (finder and SAM run afresh for each prompt).

    python bench/segment_prompts.py --out results/segment_prompts_cpu.json
    python bench/segment_prompts.py --finder grounding-dino --out results/segment_prompts_dino_cpu.json
    python bench/segment_prompts.py --finder sam3 --out results/segment_prompts_sam3_cpu.json

The models have their real sizes and random weights (pretrained weights cannot
be downloaded here; the time does not depend on them): CLIPSeg rd64-refined
(CLIP ViT-B/16 at 352x352, reduce_dim 64), Grounding DINO tiny (Swin-T,
BERT-base, 900 queries, images resized to 800 pixels) or SAM 3 (ViT-L at
1008 pixels, its CLIP text encoder, 200 queries; it outlines itself, so no
SAM runs after it), saved to a temporary
folder and loaded back through from_pretrained like a Hub copy, and SAM
ViT-B. Every prompt is made to match exactly once (CLIPSeg threshold 0: the
whole image is one region; Grounding DINO min score 0 and its best box per
prompt only), so SAM always runs and each prompt adds one instance: with
random weights a real threshold could find nothing, skip SAM and flatter the
numbers, while random boxes by the dozen would time SAM's decoder per
instance (--max-per-prompt 16 shows that cost), not the prompts.

The three ways run in turns, --repeats times, and each way's median counts;
prints the medians and their ratios; --out also writes them, and every
single time, as JSON with command, commit, host and date.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from record import ROOT, provenance, write_record

PROMPTS = ['dog', 'skateboard', 'cap', 'person', 'tree']


def char_level_tokenizer(kind: str):
  """A tokenizer for the benchmark's prompts (one token per letter) that
  saves and loads like the real one; the vocabulary's size does not matter."""
  import transformers
  letters = sorted(set(''.join(PROMPTS)))
  if kind == 'clip':
    tokens = ['<|startoftext|>', '<|endoftext|>'] + letters + [c + '</w>' for c in letters]
    return transformers.CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])
  tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.'] + letters + ['##' + c for c in letters]
  return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def save_random_clipseg(path: str) -> dict:
  import transformers
  config = transformers.CLIPSegConfig(vision_config=dict(patch_size=16), reduce_dim=64,
                                      use_complex_transposed_convolution=True)  # rd64-refined
  image_processor = transformers.ViTImageProcessor(size={'height': 352, 'width': 352},
                                                   image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
  transformers.CLIPSegForImageSegmentation(config).save_pretrained(path)
  transformers.CLIPSegProcessor(image_processor=image_processor, tokenizer=char_level_tokenizer('clip')).save_pretrained(path)
  return {'threshold': 0.0, 'min_score': 0.0}


def save_random_grounding_dino(path: str, max_per_prompt: int) -> dict:
  import transformers
  transformers.GroundingDinoForObjectDetection(transformers.GroundingDinoConfig()).save_pretrained(path)
  transformers.GroundingDinoProcessor(image_processor=transformers.GroundingDinoImageProcessor(),
                                      tokenizer=char_level_tokenizer('bert')).save_pretrained(path)
  return {'min_score': 0.0, 'max_per_prompt': max_per_prompt}


def save_random_sam3(path: str, max_per_prompt: int) -> dict:
  import transformers
  transformers.Sam3Model(transformers.Sam3Config()).save_pretrained(path)  # The released architecture (ViT-L, 1008 px).
  transformers.Sam3Processor(image_processor=transformers.Sam3ImageProcessor(),
                             tokenizer=char_level_tokenizer('clip')).save_pretrained(path)
  return {'min_score': 0.0, 'max_per_prompt': max_per_prompt}


def time_in_turns(ways: dict, repeats: int) -> dict[str, list[float]]:
  """Seconds of each way, run in turns (a, b, c, a, b, c, ...) after one
  warm-up each, so that a shared machine's drift hits every way alike."""
  for fn in ways.values():
    fn()  # First-call allocations and kernel selection.
  seconds = {name: [] for name in ways}
  for _ in range(repeats):
    for name, fn in ways.items():
      start = time.perf_counter()
      fn()
      seconds[name].append(time.perf_counter() - start)
  return seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--finder', default='clipseg', choices=('clipseg', 'grounding-dino', 'sam3'))
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--size', default='640x480', help='Image width x height.')
  parser.add_argument('--max-per-prompt', type=int, default=1, help='Grounding DINO: boxes kept per prompt.')
  parser.add_argument('--batched-only', action='store_true',
                      help="Leave out the write-ups' per-prompt way (5 more runs of each model per round).")
  parser.add_argument('--out', help='Also write the results to this JSON file.')
  args = parser.parse_args()
  started = provenance()

  import torch
  from segment_anything import sam_model_registry
  from transformers.utils import logging as hf_logging
  sys.path.insert(0, ROOT)
  from seg_bridge.build import Options, build

  hf_logging.disable_progress_bar()
  torch.manual_seed(0)
  with tempfile.TemporaryDirectory() as folder:
    sam_path = os.path.join(folder, 'sam_vit_b_random.pth')
    torch.save(sam_model_registry['vit_b'](checkpoint=None).state_dict(), sam_path)
    if args.finder == 'clipseg':
      options = save_random_clipseg(folder)
    elif args.finder == 'grounding-dino':
      options = save_random_grounding_dino(folder, args.max_per_prompt)
    else:
      options = save_random_sam3(folder, args.max_per_prompt)
    masker = {} if args.finder == 'sam3' else {'masker': 'sam', 'masker_model': sam_path}  # SAM 3 outlines itself.
    segmenter, _ = build(Options(finder=args.finder, finder_model=folder, device='cpu', **masker, **options))
  width, height = map(int, args.size.split('x'))
  image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)

  last = {}  # The latest result of each batched way.

  def batched(count):
    last[count] = segmenter.segment(image, PROMPTS[:count])

  def per_prompt():  # The write-ups' way: everything again for each prompt.
    for prompt in PROMPTS:
      segmenter.segment(image, [prompt])

  ways = {'batched_1_prompt': lambda: batched(1), 'batched_5_prompts': lambda: batched(5)}
  if not args.batched_only:
    ways['per_prompt_5_prompts'] = per_prompt
  each = time_in_turns(ways, args.repeats)
  seconds = {way: statistics.median(times) for way, times in each.items()}
  instances = {'1_prompt': len(last[1].instances), '5_prompts': len(last[5].instances)}
  ratios = {'5_prompts_over_1': seconds['batched_5_prompts'] / seconds['batched_1_prompt']}
  if not args.batched_only:
    ratios['per_prompt_over_batched_5'] = seconds['per_prompt_5_prompts'] / seconds['batched_5_prompts']
  for way, s in seconds.items():
    print(f'{way:>22}: {s:6.2f} s')
  print(f'5 prompts cost {ratios["5_prompts_over_1"]:.2f}x one prompt (target <= 1.3). (instances: {instances})')
  if args.out:
    write_record(args.out, started, finder=args.finder, sam=None if args.finder == 'sam3' else 'vit_b', weights='random (real-size architectures)',
                 image_size=[height, width], prompts=PROMPTS, torch=torch.__version__,
                 torch_threads=torch.get_num_threads(), repeats=args.repeats, median_seconds=seconds, seconds_each=each,
                 ratios=ratios, instances=instances, finder_options=options)


if __name__ == '__main__':
  main()
