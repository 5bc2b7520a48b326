r"""A web page for text-prompted segmentation: upload or paste an image, type
what to find, pick the finder and masker, see the labelled instances, and
download the masks and JSON; or, in the Video tab, upload a clip and get it
back with each object's mask and stable ID, and its per-frame masks.

    python -m seg_bridge.demo                                   # http://127.0.0.1:7860
    python -m seg_bridge.demo --sam2-model facebook/sam2.1-hiera-large   # SAM's weights: fetched once
    python -m seg_bridge.demo --settings eval/settings.json     # a calibration's thresholds, per prompt

Models load on first use of each finder / masker and are kept; one loaded
model serves every request (its image embedding is per call, not state).
Weights as for segment.py; a missing one is said in the page, in one line.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import zipfile

import numpy as np

from seg_bridge.build import FINDER_CHOICES, Options, build
from seg_bridge.maskers import MASKERS
from seg_bridge.segmenters import SEGMENTERS

MASKER_LABELS = {'sam': 'SAM', 'sam2': 'SAM 2'}
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # The page calls no one home (and works offline).


def zipped(folder: str, archive: str) -> str:
  """The files under `folder` in a zip at `archive` (paths relative to the folder)."""
  with zipfile.ZipFile(archive, 'w') as z:
    for root, _, files in os.walk(folder):
      for name in sorted(files):
        z.write(os.path.join(root, name), os.path.relpath(os.path.join(root, name), folder))
  return archive


class Demo:
  """The page's two actions, segment() and segment_video(), over lazily loaded, cached models."""

  def __init__(self, models: dict[str, str | None], device: str | None = None, settings: tuple[str, dict] | None = None):
    self.models, self.device = models, device  # name of a finder or masker -> its weights (None: the standard)
    self.settings = settings  # (finder, Options fields) of a calibration (seg_bridge.evaluation.calibrate), or None.
    self._loaded, self._lock = {}, threading.Lock()
    self._scratch = tempfile.TemporaryDirectory(prefix='seg_bridge_demo_')  # The downloads; gone at exit.

  def segmenter(self, finder: str, masker: str, min_score: float | None, calibrated: bool = False):
    """The segmenter; `calibrated`, for the finder of --settings: its thresholds in place of `min_score`."""
    if finder in SEGMENTERS:  # SAM 3 outlines itself.
      masker = Options.masker
    thresholds = {'min_score': min_score}
    if calibrated and self.settings and self.settings[0] == finder:
      thresholds, min_score = self.settings[1], 'calibrated'
    key = (finder, masker, min_score)
    with self._lock:  # Loading: once per combination.
      if key not in self._loaded:
        self._loaded[key] = build(Options(
            finder=finder, finder_model=self.models.get(finder), masker=masker,
            masker_model=None if finder in SEGMENTERS else self.models.get(masker), device=self.device,
            **thresholds))[0]
    return self._loaded[key]

  def segment(self, image: np.ndarray | None, prompt: str, finder: str, masker: str, min_score: float,
              calibrated: bool = False):
    """-> ((image, [(mask, 'label score'), ...]), a zip of the masks and JSON, a status line)."""
    import gradio as gr

    from seg_bridge.outputs import OutputFolder
    from seg_bridge.types import PromptError
    if image is None:
      raise gr.Error('Upload or paste an image first.')
    try:
      segmenter = self.segmenter(finder, masker, None if min_score is None else float(min_score), calibrated)
      result = segmenter.segment(np.ascontiguousarray(image[..., :3]).astype(np.uint8), prompt)
    except (PromptError, ValueError, OSError) as e:
      raise gr.Error(str(e)) from None
    folder = tempfile.mkdtemp(dir=self._scratch.name)
    out = OutputFolder(folder)
    path = out.write('result', 'upload', {'prompts': result.prompts, 'finder': finder, 'masker': masker}, image[..., :3],
                     result)
    out.close()
    archive = zipped(path, os.path.join(folder, 'segmentation.zip'))
    annotations = [(inst.mask, f'{inst.label} {inst.score:.2f}') for inst in result.instances]
    found = ', '.join(f'{i.label} {i.score:.2f}' for i in result.instances) or 'nothing'
    return (image[..., :3], annotations), archive, f'Found: {found}.'

  def tracker(self):
    from seg_bridge.tracking import Sam2Tracker
    with self._lock:
      if 'tracker' not in self._loaded:
        self._loaded['tracker'] = Sam2Tracker.load(self.models.get('tracker') or Sam2Tracker.default_model,
                                                       self.device)
    return self._loaded['tracker']

  def segment_video(self, video: str | None, prompt: str, finder: str, masker: str, min_score: float, every: int,
                    max_frames: int, calibrated: bool = False):
    """-> (the overlay video, a zip of masks.jsonl, the ID maps and result.json, a status line)."""
    import gradio as gr

    from seg_bridge.tracking import VideoTracker
    from seg_bridge.types import PromptError
    from seg_bridge.video_io import VideoError, VideoReader
    from seg_bridge.video_outputs import VideoOutputs
    if not video:
      raise gr.Error('Upload a video first.')
    folder = tempfile.mkdtemp(dir=self._scratch.name)
    try:
      segmenter = self.segmenter(finder, masker, None if min_score is None else float(min_score), calibrated)
      tracker = VideoTracker(segmenter, self.tracker(), every=int(every))
      with VideoReader(video, int(max_frames)) as frames:
        outputs = VideoOutputs(os.path.join(folder, 'video'), frames.fps)
        for frame, result in tracker.track(frames, prompt):
          outputs.add(frame, result)
        outputs.close({'source': os.path.basename(video), 'prompts': prompt, 'finder': finder, 'masker': masker})
    except (PromptError, VideoError, ValueError, OSError) as e:
      raise gr.Error(str(e)) from None
    seen = ', '.join(f'#{k} {v["label"]}' for k, v in sorted(outputs.seen.items())) or 'nothing'
    return (os.path.join(folder, 'video', 'overlay.mp4'), zipped(os.path.join(folder, 'video'), os.path.join(folder, 'video.zip')),
            f'{outputs.count} frames; objects: {seen}.')


def build_page(demo: Demo):
  import gradio as gr
  with gr.Blocks(title='Text-prompted segmentation') as page:
    gr.Markdown('## Text-prompted segmentation\nA text prompt finds the objects; SAM outlines them.')
    with gr.Row():
      finder = gr.Dropdown(list(FINDER_CHOICES), value='clipseg', label='Finder')
      masker = gr.Dropdown([(MASKER_LABELS.get(m, m), m) for m in MASKERS], value='sam', label='Masker')
      min_score = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label='Minimum score')
      calibrated = gr.Checkbox(value=demo.settings is not None, visible=demo.settings is not None,
                               label=f'Calibrated thresholds for {demo.settings[0] if demo.settings else ""} '
                                     '(--settings; the slider serves the other finders)')
    with gr.Tab('Image'):
      with gr.Row():
        with gr.Column():
          image = gr.Image(label='Image', type='numpy', sources=['upload', 'clipboard'], elem_id='image')
          prompt = gr.Textbox(label='What to segment', placeholder='dog, ball', elem_id='prompt')
          run = gr.Button('Segment', variant='primary', elem_id='run')
        with gr.Column():
          annotated = gr.AnnotatedImage(label='Instances', elem_id='result')
          status = gr.Markdown(elem_id='status')
          download = gr.File(label='Masks and JSON (zip)')
    with gr.Tab('Video'):
      with gr.Row():
        with gr.Column():
          video = gr.Video(label='Video', sources=['upload'])
          video_prompt = gr.Textbox(label='What to segment', placeholder='dog, ball')
          every = gr.Slider(1, 60, value=15, step=1, label='Look for new objects every N frames')
          max_frames = gr.Slider(1, 3000, value=300, step=1, label='At most this many frames')
          run_video = gr.Button('Segment the video', variant='primary')
        with gr.Column():
          tracked = gr.Video(label='Objects, by ID')
          video_status = gr.Markdown()
          video_download = gr.File(label='Per-frame masks, ID maps and JSON (zip)')
    image_inputs = [image, prompt, finder, masker, min_score, calibrated]
    run.click(demo.segment, image_inputs, [annotated, download, status], api_name='segment')
    prompt.submit(demo.segment, image_inputs, [annotated, download, status])
    run_video.click(demo.segment_video, [video, video_prompt, finder, masker, min_score, every, max_frames, calibrated],
                    [tracked, video_download, video_status], api_name='segment_video')
  return page


def main(argv=None):
  parser = argparse.ArgumentParser(prog='python -m seg_bridge.demo', description=__doc__.split('\n')[0])
  parser.add_argument('--clipseg-model', default=None, help='CLIPSeg: HF name or folder.')
  parser.add_argument('--dino-model', default=None, help='Grounding DINO: HF name or folder.')
  parser.add_argument('--sam3-model', default=None, help='SAM 3: HF name or folder.')
  parser.add_argument('--sam-checkpoint', default=None, help='SAM .pth file (default: the official ViT-B one, downloaded once).')
  parser.add_argument('--sam2-model', default=None, help='SAM 2: HF name or folder.')
  parser.add_argument('--tracker-model', default=None, help='SAM 2 video model for the Video tab: HF name or folder '
                      '(default facebook/sam2.1-hiera-large).')
  parser.add_argument('--device', default=None)
  parser.add_argument('--settings', default=None, metavar='FILE',
                      help='A calibration (the settings.json of python -m seg_bridge.evaluate --calibrate): its '
                           'thresholds per prompt for the finder it was made for.')
  parser.add_argument('--host', default='127.0.0.1', help='127.0.0.1: this machine only; 0.0.0.0: the network.')
  parser.add_argument('--port', type=int, default=7860)
  args = parser.parse_args(argv)
  models = {'clipseg': args.clipseg_model, 'grounding-dino': args.dino_model, 'sam3': args.sam3_model,
            'sam': args.sam_checkpoint, 'sam2': args.sam2_model, 'tracker': args.tracker_model}
  settings = None
  if args.settings:
    from seg_bridge.evaluation.calibrate import SettingsError, finder_of, read_settings
    try:
      finder = finder_of(args.settings)
      settings = (finder, read_settings(args.settings, finder))
    except SettingsError as e:
      parser.exit(2, f'error: {e}\n')
  build_page(Demo(models, args.device, settings)).launch(server_name=args.host, server_port=args.port)


if __name__ == '__main__':
  main()
