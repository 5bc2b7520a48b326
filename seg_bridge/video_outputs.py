"""What segment_video.py writes for one video, into a staging folder that
seg_bridge.outputs.OutputFolder moves into place complete:

    NAME/overlay.mp4    the video with each object's mask tinted in its ID's colour, '#ID label score'
    NAME/masks.jsonl    one line per frame: {"frame": k, "objects": [{"id", "label", "score", "box", "rle"}]}
    NAME/ids/K.png      per frame, a uint16 PNG whose pixels hold the object ID (0: none)
    NAME/result.json    source, settings, prompts, fps, frame count, size (H, W) of the frames and of the
                        overlay, and per ID its label and frames seen

H.264 needs even sizes: a video of odd height or width gets an overlay one
pixel larger (the edge repeated; result.json's overlay_size says so), while
masks.jsonl and ids/ keep the video's own size.

Frames are written as they come, so memory does not grow with the video.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from seg_bridge.outputs import RESULT, coco_rle, overlay
from seg_bridge.tracking import FrameResult
from seg_bridge.video_io import VideoWriter


class VideoOutputs:
  def __init__(self, folder: str, fps: float):
    self.folder, self.fps = folder, fps
    os.makedirs(os.path.join(folder, 'ids'))
    self.writer = VideoWriter(os.path.join(folder, 'overlay.mp4'), fps)
    self.lines = open(os.path.join(folder, 'masks.jsonl'), 'w')
    self.seen: dict[int, dict] = {}  # id -> {'label', 'first_frame', 'last_frame', 'frames'}
    self.count, self.size = 0, None

  def add(self, frame: np.ndarray, result: FrameResult) -> None:
    objects = result.objects
    self.writer.write(np.asarray(overlay(frame, objects, ids=[o.id for o in objects])))
    self.size = list(frame.shape[:2])
    ids = np.zeros(frame.shape[:2], np.uint16)
    for obj in objects:  # Where masks overlap, the higher ID is drawn last.
      ids[obj.mask] = obj.id
      entry = self.seen.setdefault(obj.id, {'label': obj.label, 'first_frame': result.index, 'frames': 0})
      entry['last_frame'], entry['frames'] = result.index, entry['frames'] + 1
    Image.fromarray(ids).save(os.path.join(self.folder, 'ids', f'{result.index:06d}.png'))
    self.lines.write(json.dumps({'frame': result.index, 'key_frame': result.key_frame, 'objects': [
        {'id': o.id, 'label': o.label, 'score': round(o.score, 4), 'box': o.box.tolist(), 'rle': coco_rle(o.mask)}
        for o in objects]}) + '\n')
    self.count += 1

  def close(self, record: dict) -> None:
    """Finishes the files; `record` (source, settings, prompts) goes into result.json, written last."""
    self.writer.close()
    self.lines.close()
    record = {**record, 'fps': self.fps, 'frames': self.count, 'size': self.size,
              'overlay_size': self.size and [n + n % 2 for n in self.size],
              'objects': {str(k): v for k, v in sorted(self.seen.items())}}
    with open(os.path.join(self.folder, RESULT), 'w') as f:
      json.dump(record, f, indent=1)

  def abort(self) -> None:
    for handle in (self.writer, self.lines):
      try:
        handle.close()
      except Exception:  # A half-written staging folder is dropped anyway.
        pass
