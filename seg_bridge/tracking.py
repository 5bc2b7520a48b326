"""Text-prompted video segmentation with stable object IDs: a segmenter finds
the objects on key frames, SAM 2's video model (transformers) carries them
from frame to frame.

    tracker = VideoTracker(segmenter, Sam2Tracker.load('facebook/sam2.1-hiera-large'), every=15)
    for frame, result in tracker.track(frames, ['dog', 'ball']):   # frames: RGB uint8 [H, W, 3], read lazily
      for obj in result.objects:
        obj.id, obj.label, obj.mask, obj.score, obj.box

IDs: on a key frame (every `every` frames, and each frame while nothing is
tracked) each instance the segmenter finds is matched to the objects tracked
on the frame before, by mask IoU and label. A match keeps its ID; an instance
that matches none starts a new ID without restarting the others; where
exactly one lost object (tracked before, empty now) and exactly one new
instance share a label, the instance takes the lost object's ID, as an
object that left and came back. The tracker's session keeps per-frame state;
it is pruned to what SAM 2's memory reads (its last 16 frames and a few
conditioning frames), and frames stay on the CPU, so memory stays bounded on
long videos.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from seg_bridge.loading import load_pretrained, pick_device
from seg_bridge.maskers.candidates import mask_boxes, mask_iou
from seg_bridge.types import Segmenter, parse_prompts


@dataclasses.dataclass(frozen=True)
class TrackedObject:
  id: int  # Stable across frames, from 1.
  label: str  # The prompt that found it.
  mask: np.ndarray  # bool [H, W]
  score: float  # The tracker's confidence that the object is visible (key frames: the segmenter's score).
  box: np.ndarray  # float32 [4], xyxy pixels, of the mask.


@dataclasses.dataclass(frozen=True)
class FrameResult:
  index: int
  objects: list[TrackedObject]  # Visible objects, by ID.
  key_frame: bool  # Whether the segmenter ran on this frame.


class Sam2Tracker:
  """transformers' Sam2VideoModel in streaming mode, with a bounded session."""

  default_model = 'facebook/sam2.1-hiera-large'
  keep_cond_frames = 4  # Conditioning frames kept per object: the first and the latest.

  def __init__(self, model, processor, device: str | None = None):
    self.device = pick_device(device)
    self.model, self.processor = model.to(self.device).eval(), processor
    config = model.config
    self.memory_frames = max(config.num_maskmem, config.max_object_pointers_in_encoder)

  @classmethod
  def load(cls, name_or_path: str = default_model, device: str | None = None) -> Sam2Tracker:
    from transformers import Sam2VideoModel, Sam2VideoProcessor
    return cls(load_pretrained(Sam2VideoModel, name_or_path, 'SAM 2 video model'),
               load_pretrained(Sam2VideoProcessor, name_or_path, 'SAM 2 video processor'), device)

  def start(self):
    return self.processor.init_video_session(inference_device=self.device, inference_state_device='cpu',
                                             video_storage_device='cpu')

  def step(self, session, index: int, frame: np.ndarray, new_masks: dict[int, np.ndarray]):
    """Adds `new_masks` ({id: bool [H, W]}) as prompts on this frame, runs the
    frame -> ({id: mask bool [H, W]}, {id: visibility score})."""
    import torch
    inputs = self.processor(images=frame, return_tensors='pt')
    if new_masks:  # In one call: a later call would replace the session's list of newly prompted objects.
      self.processor.add_inputs_to_inference_session(session, frame_idx=index, obj_ids=list(new_masks),
                                                     input_masks=[torch.as_tensor(m) for m in new_masks.values()])
    if session.get_obj_num() == 0:
      return {}, {}
    with torch.inference_mode():
      out = self.model(inference_session=session, frame_idx=index, frame=inputs.pixel_values[0])
      masks = self.processor.post_process_masks([out.pred_masks], original_sizes=inputs.original_sizes)[0]
      scores = out.object_score_logits.float().sigmoid().reshape(-1).cpu().numpy()
    self.prune(session, index)
    masks = masks[:, 0].cpu().numpy()  # [objects, H, W]
    return dict(zip(out.object_ids, masks)), dict(zip(out.object_ids, scores.tolist()))

  def prune(self, session, index: int) -> None:
    """Drops what SAM 2 no longer reads: older frames' pixels, outputs beyond
    its memory, all but the first and latest conditioning frames."""
    oldest = index - self.memory_frames
    for frame_idx in [f for f in session.processed_frames if f < index]:
      del session.processed_frames[frame_idx]
    for obj_idx, outputs in session.output_dict_per_obj.items():
      for frame_idx in [f for f in outputs['non_cond_frame_outputs'] if f < oldest]:
        del outputs['non_cond_frame_outputs'][frame_idx]
      cond = sorted(outputs['cond_frame_outputs'])
      for frame_idx in cond[1:-(self.keep_cond_frames - 1)]:
        del outputs['cond_frame_outputs'][frame_idx]
      tracked = session.frames_tracked_per_obj[obj_idx]
      for frame_idx in [f for f in tracked if f < oldest]:
        del tracked[frame_idx]
      for inputs in (session.point_inputs_per_obj[obj_idx], session.mask_inputs_per_obj[obj_idx]):
        for frame_idx in [f for f in inputs if f < index]:
          del inputs[frame_idx]


class VideoTracker:
  """A segmenter on key frames and a Sam2Tracker between them; see the module doc."""

  def __init__(self, segmenter: Segmenter, tracker: Sam2Tracker, *, every: int = 15, match_iou: float = 0.3):
    if not (isinstance(every, int) and every >= 1):
      raise ValueError(f'--every {every!r}: give a whole number of frames >= 1.')
    self.segmenter, self.tracker, self.every, self.match_iou = segmenter, tracker, every, match_iou

  def track(self, frames: Iterable[np.ndarray],
            prompts: str | list[str]) -> Iterator[tuple[np.ndarray, FrameResult]]:
    """Each frame, as it is read, with its result."""
    prompts = parse_prompts(prompts)
    self.segmenter.check_prompts(prompts)
    session = self.tracker.start()
    labels: dict[int, str] = {}  # Every ID given so far.
    previous: dict[int, np.ndarray] = {}  # Masks of the frame before, of the visible objects.
    for index, frame in enumerate(frames):
      key = index % self.every == 0 or not previous
      new_masks, found_scores = {}, {}
      if key:
        found = self.segmenter.segment(frame, prompts).instances
        new_masks, found_scores = self.assign_ids(found, previous, labels)
      masks, scores = self.tracker.step(session, index, frame, new_masks)
      objects = [TrackedObject(obj_id, labels[obj_id], mask, found_scores.get(obj_id, scores[obj_id]),
                               mask_boxes(mask)) for obj_id, mask in sorted(masks.items()) if mask.any()]
      previous = {obj.id: obj.mask for obj in objects}
      yield frame, FrameResult(index, objects, key)

  def assign_ids(self, found, previous: dict[int, np.ndarray], labels: dict[int, str]):
    """IDs for a key frame's instances (updating `labels` with new ones) ->
    ({id: mask} to prompt the tracker with, {id: the segmenter's score})."""
    new_masks, scores, taken = {}, {}, set()
    unmatched = []
    for inst in found:  # Best first: the better instance gets the match.
      candidates = [(float(mask_iou(inst.mask, mask)), obj_id) for obj_id, mask in previous.items()
                    if labels[obj_id] == inst.label and obj_id not in taken]
      iou, obj_id = max(candidates, default=(0.0, None))
      if obj_id is not None and iou >= self.match_iou:
        taken.add(obj_id)  # Tracked already: the tracker keeps it; no new prompt.
        scores[obj_id] = inst.score
      else:
        unmatched.append(inst)
    lost = collections.defaultdict(list)  # label -> IDs given before, not visible now.
    for obj_id, label in labels.items():
      if obj_id not in previous:
        lost[label].append(obj_id)
    per_label = collections.Counter(inst.label for inst in unmatched)
    for inst in unmatched:
      if per_label[inst.label] == 1 and len(lost[inst.label]) == 1:
        obj_id = lost[inst.label][0]  # Back in view: the match is clear.
      else:
        obj_id = max(labels, default=0) + 1
        labels[obj_id] = inst.label
      new_masks[obj_id], scores[obj_id] = inst.mask, inst.score
    return new_masks, scores
