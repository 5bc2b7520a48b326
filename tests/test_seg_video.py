"""Video: stable IDs on a synthetic video of moving shapes (a finder that sees
the shapes by colour, a tracker that follows them exactly), SAM 2's streaming
tracker on a small random model with a bounded session, and
segment_video.py end to end."""

import json

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip('torch')
pytest.importorskip('av')
pytest.importorskip('pycocotools')

import segment_video  # noqa: E402
from seg_bridge.maskers.candidates import mask_boxes, mask_iou  # noqa: E402
from seg_bridge.tracking import Sam2Tracker, VideoTracker  # noqa: E402
from seg_bridge.types import Instance, Segmentation  # noqa: E402
from seg_bridge.video_io import VideoReader, VideoWriter  # noqa: E402

COLOURS = {'square': (255, 0, 0), 'disc': (0, 255, 0)}


def shapes_video(count=40, size=(64, 96)):
  """Frames of a red square moving right (all frames), a green disc (frames
  10-19, gone 20-29, back elsewhere from 30) and a second red square from
  frame 15; and per frame the true objects {name: mask}."""
  h, w = size
  yy, xx = np.mgrid[:h, :w]
  frames, truth = [], []
  for k in range(count):
    objects = {'A': ('square', (yy >= 10) & (yy < 22) & (xx >= 5 + k) & (xx < 17 + k))}
    if 10 <= k < 20:
      objects['disc'] = ('disc', (yy - 45) ** 2 + (xx - (60 - k)) ** 2 <= 36)
    if k >= 30:
      objects['disc'] = ('disc', (yy - 48) ** 2 + (xx - 20) ** 2 <= 36)
    if k >= 15:
      objects['B'] = ('square', (yy >= 40) & (yy < 50) & (xx >= 70) & (xx < 80))
    frame = np.full((h, w, 3), 40, np.uint8)
    for label, mask in objects.values():
      frame[mask] = COLOURS[label]
    frames.append(frame)
    truth.append({name: mask for name, (_, mask) in objects.items()})
  return frames, truth


def shapes_of(frame, label):
  parts, count = ndimage.label((frame == COLOURS[label]).all(-1))
  return [parts == i for i in range(1, count + 1)]


class ColourSegmenter:
  """Finds every shape of each prompt's colour: boxes and masks known exactly."""

  def __init__(self):
    self.calls = 0

  def check_prompts(self, prompts):
    pass

  def segment(self, image, prompts):
    self.calls += 1
    found = [Instance(p, m, 0.9, mask_boxes(m)) for p in prompts for m in shapes_of(image, p)]
    return Segmentation(list(prompts), found, np.zeros((len(prompts), *image.shape[:2]), np.float32))


class FollowingTracker:
  """Follows each prompted object exactly: the shape of its colour that
  overlaps it most on the next frame, or nothing once it has left."""

  def __init__(self):
    self.prompted = []  # (frame, ids) of every prompt.

  def start(self):
    return {}  # id -> (label colour, last mask)

  def step(self, session, index, frame, new_masks):
    if new_masks:
      self.prompted.append((index, sorted(new_masks)))
    for obj_id, mask in new_masks.items():
      session[obj_id] = mask
    masks = {}
    for obj_id, last in session.items():
      shapes = [m for label in COLOURS for m in shapes_of(frame, label)]
      best = max(shapes, key=lambda m: mask_iou(m, last), default=None)
      masks[obj_id] = best if best is not None and mask_iou(best, last) > 0 else np.zeros_like(last)
      session[obj_id] = masks[obj_id] if masks[obj_id].any() else last
    return masks, {obj_id: 1.0 for obj_id in masks}


def test_ids_stay_new_objects_get_new_ids_and_a_returning_object_keeps_its_id():
  frames, truth = shapes_video()
  tracker = FollowingTracker()
  results = [r for _, r in VideoTracker(ColourSegmenter(), tracker, every=5).track(frames, 'square, disc')]
  names = {}  # Our ID -> the true object it covers, which must never change.
  for result, objects in zip(results, truth):
    assert len(result.objects) == len(objects)  # Every visible object, each once.
    for obj in result.objects:
      name = next(n for n, m in objects.items() if mask_iou(obj.mask, m) > 0.9)
      assert names.setdefault(obj.id, name) == name, (result.index, obj.id)
  assert names == {1: 'A', 2: 'disc', 3: 'B'}  # The disc came back as 2.
  assert tracker.prompted == [(0, [1]), (10, [2]), (15, [3]), (30, [2])]  # Only new or returning objects.
  assert [r.key_frame for r in results[:11]] == [k % 5 == 0 for k in range(11)]


def test_an_unclear_return_gets_a_new_id():
  tracker = VideoTracker(ColourSegmenter(), FollowingTracker())
  mask = np.zeros((8, 8), bool)
  mask[2:4, 2:4] = True
  labels = {1: 'disc', 2: 'disc'}  # Both lost: which one came back is not clear.
  new_masks, _ = tracker.assign_ids([Instance('disc', mask, 0.9, mask_boxes(mask))], {}, labels)
  assert list(new_masks) == [3] and labels[3] == 'disc'
  with pytest.raises(ValueError, match='--every 0'):
    VideoTracker(ColourSegmenter(), FollowingTracker(), every=0)


def test_sam2_streaming_keeps_ids_and_a_bounded_session(sam2_video_dir):
  tracker = Sam2Tracker.load(sam2_video_dir, 'cpu')
  frames, truth = shapes_video(count=24)
  session = tracker.start()
  for k, frame in enumerate(frames):
    new = {1: truth[0]['A']} if k == 0 else {2: truth[15]['B']} if k == 15 else {}
    masks, scores = tracker.step(session, k, frame, new)
    assert sorted(masks) == ([1] if k < 15 else [1, 2]) and sorted(scores) == sorted(masks)
    assert all(m.shape == (64, 96) and m.dtype == bool for m in masks.values())
    assert list(session.processed_frames) == [k]  # Only the frame in work.
    for outputs in session.output_dict_per_obj.values():
      assert len(outputs['non_cond_frame_outputs']) <= tracker.memory_frames + 1
      assert len(outputs['cond_frame_outputs']) <= tracker.keep_cond_frames


def write_video(path, frames, fps=10.0):
  with VideoWriter(str(path), fps) as writer:
    for frame in frames:
      writer.write(frame)
  return str(path)


def test_the_command_writes_overlay_masks_and_id_maps(tmp_path, clipseg_dir, sam2_dir, sam2_video_dir, capsys):
  from PIL import Image
  from pycocotools import mask as mask_utils
  frames, _ = shapes_video(count=8)
  clip = write_video(tmp_path / 'clip.mp4', frames)
  (tmp_path / 'broken.mp4').write_text('not a video')
  data = open(clip, 'rb').read()
  (tmp_path / 'cut.mp4').write_bytes(data[:len(data) // 2])  # As by a full disk.
  out = tmp_path / 'out'
  args = ['--prompt', 'square', '--finder-model', clipseg_dir, '--threshold', '0', '--min-score', '0',
          '--sam2-model', sam2_dir, '--tracker-model', sam2_video_dir, '--every', '4', '--device', 'cpu',
          '--out', str(out), clip, str(tmp_path / 'broken.mp4'), str(tmp_path / 'cut.mp4')]
  assert segment_video.main(args) == 1  # The broken files fail alone, each in one line.
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error: ')]
  assert len(errors) == 2 and "broken.mp4': not a readable video" in errors[0] and "cut.mp4': not a readable" in errors[1]
  record = json.loads((out / 'clip' / 'result.json').read_text())
  assert record['frames'] == 8 and record['fps'] == 10.0 and record['objects']
  lines = [json.loads(line) for line in (out / 'clip' / 'masks.jsonl').read_text().splitlines()]
  assert [line['frame'] for line in lines] == list(range(8))
  for line in lines:
    ids = np.asarray(Image.open(out / 'clip' / 'ids' / f'{line["frame"]:06d}.png'))
    assert ids.shape == (64, 96) and ids.dtype == np.uint16
    for obj in line['objects']:
      mask = mask_utils.decode(dict(obj['rle'], counts=obj['rle']['counts'].encode())).astype(bool)
      assert obj['label'] == 'square' and (ids[mask] >= obj['id']).all()
  with VideoReader(str(out / 'clip' / 'overlay.mp4')) as overlay:
    assert overlay.size == (64, 96) and len(list(overlay)) == 8
  assert sorted(p.name for p in out.iterdir()) == ['.lock', 'clip', 'errors.jsonl', 'run.json']
  failed = [json.loads(line)['name'] for line in (out / 'errors.jsonl').read_text().splitlines()]
  assert failed == ['broken', 'cut']
  assert segment_video.main(args[:-2]) == 0  # Done before with the same settings: kept.
  assert '1 of 1 videos were done by an earlier run' in capsys.readouterr().out
  assert not (out / 'errors.jsonl').exists()  # This run failed nothing.


@pytest.mark.parametrize('extra, phrase', [
    (['--every', '0'], "argument --every: '0' is not a whole number >= 1"),
    (['--max-frames', 'all'], "argument --max-frames: 'all' is not a whole number >= 1"),
    (['--prompt', ' , '], 'the prompt is empty'),
    (['--finder', 'sam3', '--sam2-model', 'x'], 'outlines the objects itself'),
    (['--out', 'A_FILE'], 'is a file; give a folder'),
    (['--tracker-model', 'NOWHERE'], 'SAM 2 video model'),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, clipseg_dir, sam2_dir, extra, phrase, capsys):
  clip = write_video(tmp_path / 'clip.mp4', shapes_video(count=2)[0])
  (tmp_path / 'a_file').write_text('')
  extra = [{'NOWHERE': str(tmp_path / 'nowhere'), 'A_FILE': str(tmp_path / 'a_file')}.get(a, a) for a in extra]
  args = ['--prompt', 'square', '--finder-model', clipseg_dir, '--sam2-model', sam2_dir, '--device', 'cpu',
          '--out', str(tmp_path / 'out'), clip, *extra]
  try:
    status = segment_video.main(args)
  except SystemExit as e:  # argparse's usage errors.
    status = e.code
  lines = capsys.readouterr().err.strip().splitlines()
  assert status == 2 and len(lines) == 1 and phrase in lines[0], lines
  assert not (tmp_path / 'out').exists()


@pytest.mark.slow  # A real process and a signal: under a minute, most of it loading torch.
def test_ctrl_c_keeps_finished_videos_and_leaves_no_partial_one(tmp_path, clipseg_dir, sam2_dir, sam2_video_dir):
  import os
  import signal
  import subprocess
  import sys
  import time

  from conftest import ROOT
  frames, _ = shapes_video(count=6)
  folder = tmp_path / 'in'
  folder.mkdir()
  for k in range(4):
    write_video(folder / f'clip{k}.mp4', frames)
  out = tmp_path / 'out'
  process = subprocess.Popen(
      [sys.executable, 'segment_video.py', '--prompt', 'square', '--finder-model', clipseg_dir, '--threshold', '0',
       '--min-score', '0', '--sam2-model', sam2_dir, '--tracker-model', sam2_video_dir, '--device', 'cpu',
       '--out', str(out), str(folder)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  deadline = time.time() + 240
  while time.time() < deadline and process.poll() is None and not (out / 'clip0').exists():
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 130 and 'Traceback' not in stderr, stderr
  assert stderr.strip().splitlines()[-1].startswith('interrupted: ')
  done = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith('.'))
  assert 'clip0' in done and len(done) < 4 and not (out / '.partial').exists()
  for name in done:
    assert (out / name / 'result.json').is_file()
