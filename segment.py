r"""Text-prompted segmentation of images: CLIPSeg or Grounding DINO finds, SAM or SAM 2 outlines.

    python segment.py --prompt "dog" photo.jpg
    python segment.py --prompt "skateboard, cap" --out results/ photos/ more.png
    python segment.py --finder grounding-dino --prompt "cat, remote control" https://example.com/cat.jpg

For each image writes NAME_overlay.png, NAME_mask_K.png per instance and
NAME.json (labels, scores, xyxy boxes, COCO RLE masks) into --out; NAME is
the file's stem, with _2, _3 ... where two images share one. An image
that cannot be read is reported in one line and skipped; the exit status is
non-zero if any image failed.

Weights: --finder-model is a Hugging Face name (taken from the HF cache;
default CIDAS/clipseg-rd64-refined or IDEA-Research/grounding-dino-tiny) or a
folder saved with save_pretrained; --sam-checkpoint is an official SAM .pth
file (https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth
for vit_b, sam_vit_l_0b3195.pth / sam_vit_h_4b8939.pth for vit_l / vit_h);
--sam2-model is a Hugging Face name or folder, like --finder-model.
"""

import argparse
import os
import sys
import urllib.parse

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')


def image_paths(inputs: list[str]) -> list[str]:
  """Files, http(s) URLs, and the images in folders."""
  paths = []
  for item in inputs:
    if os.path.isdir(item):
      paths += sorted(os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(IMAGE_SUFFIXES))
    else:
      paths.append(item)
  return paths


def output_names(paths: list[str]) -> list[str]:
  """Each image's file stem, made unique: a/dog.jpg, b/dog.png -> dog, dog_2."""
  names = []
  for path in paths:
    stem = os.path.splitext(os.path.basename(urllib.parse.urlparse(path).path if '://' in path else path))[0]
    name, k = stem or 'image', 1
    while name in names:
      k += 1
      name = f'{stem or "image"}_{k}'
    names.append(name)
  return names


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('images', nargs='+', help='Image files, folders of images, or http(s) URLs.')
  parser.add_argument('--prompt', required=True, help='What to segment; several objects separated by commas.')
  parser.add_argument('--out', default='segment_out', help='Output folder (default: segment_out).')
  parser.add_argument('--finder', default='clipseg', choices=('clipseg', 'grounding-dino'),
                      help='What turns the words into regions: CLIPSeg heatmaps or Grounding DINO boxes.')
  parser.add_argument('--finder-model', default=None,
                      help="The finder's Hugging Face name or local folder (default: its standard checkpoint).")
  parser.add_argument('--sam-checkpoint', default='sam_vit_b_01ec64.pth', help='SAM .pth checkpoint file.')
  parser.add_argument('--sam-type', default='vit_b', choices=('vit_b', 'vit_l', 'vit_h'))
  parser.add_argument('--sam2-model', default=None,
                      help='Use SAM 2 instead: a Hugging Face name (e.g. facebook/sam2.1-hiera-large) or a local '
                           'folder; --sam-checkpoint is then ignored.')
  parser.add_argument('--min-score', type=float, default=None,
                      help="A prompt matches only where the finder's confidence reaches this: the heatmap's "
                           "probability for CLIPSeg (default 0.5), a box's score for Grounding DINO (default 0.35).")
  parser.add_argument('--threshold', type=float, default=None,
                      help='CLIPSeg only: fixed heatmap threshold in [0, 1] (default: adaptive, per image and prompt).')
  parser.add_argument('--device', default=None, help='cuda, mps or cpu (default: the best available).')
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  from tqdm import tqdm
  from transformers.utils import logging as hf_logging

  from seg_bridge.finders import make_finder
  from seg_bridge.images import ImageError, load_image
  from seg_bridge.outputs import write_results
  from seg_bridge.pipeline import PromptError, TextSegmenter, parse_prompts
  from seg_bridge.loading import ModelNotFoundError
  from seg_bridge.sam import SamMasker
  from seg_bridge.sam2 import Sam2Masker

  try:
    prompts = parse_prompts(args.prompt)
  except PromptError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  hf_logging.disable_progress_bar()  # One bar, over the images, is enough.
  paths = image_paths(args.images)
  if not paths:
    print('error: no images found in the given folders.', file=sys.stderr)
    return 2
  options = {} if args.min_score is None else {'min_score': args.min_score}
  if args.threshold is not None:
    if args.finder != 'clipseg':
      print('error: --threshold applies to CLIPSeg heatmaps only; use --min-score for box scores.', file=sys.stderr)
      return 2
    options['threshold'] = args.threshold
  try:
    finder = make_finder(args.finder, args.finder_model, args.device, **options)
    masker = (Sam2Masker.from_pretrained(args.sam2_model, args.device) if args.sam2_model else
              SamMasker.from_checkpoint(args.sam_checkpoint, args.sam_type, args.device))
    segmenter = TextSegmenter(finder, masker)
  except ModelNotFoundError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2

  failures = 0
  for path, name in tqdm(zip(paths, output_names(paths)), total=len(paths), unit='image', disable=len(paths) < 2):
    try:
      image = load_image(path)
      result = segmenter.segment(image, prompts)
      write_results(args.out, name, image, result)
    except ImageError as e:
      failures += 1
      tqdm.write(f'error: {e}', file=sys.stderr)
      continue
    except PromptError as e:  # The same for every image.
      print(f'error: {e}', file=sys.stderr)
      return 2
    found = ', '.join(f'{i.label} {i.score:.2f}' for i in result.instances) or 'nothing'
    tqdm.write(f'{path}: {found}')
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
