"""Reading and writing video with PyAV (FFmpeg's libraries), frame by frame,
so a long video never sits in memory whole.

    with VideoReader('clip.mp4') as video:          # video.fps, video.size (H, W), video.frame_count
      for frame in video:                           # RGB uint8 [H, W, 3]
        ...
    with VideoWriter('out.mp4', fps=25.0) as out:
      out.write(frame)
"""

from __future__ import annotations

import fractions
import os

import numpy as np

from vit_jax.images import not_a_file


class VideoError(ValueError):
  """A file that is not a readable video."""


class VideoReader:
  def __init__(self, path: str, max_frames: int | None = None):
    import av
    if not os.path.isfile(path):
      raise VideoError(f'{path!r}: {not_a_file(path)}.')
    try:
      self.container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as e:
      raise VideoError(f'{path!r}: not a readable video ({getattr(e, "strerror", None) or type(e).__name__}).') from None
    if not self.container.streams.video:
      self.container.close()
      raise VideoError(f'{path!r}: holds no video stream (only sound or data); give a video file.')
    self.stream = self.container.streams.video[0]
    self.path, self.max_frames = path, max_frames
    rate = self.stream.average_rate or self.stream.guessed_rate or 25
    self.fps = float(rate)
    self.size = (self.stream.codec_context.height, self.stream.codec_context.width)
    self.frame_count = self.stream.frames or None  # 0 where the container does not say.
    if self.frame_count and max_frames:
      self.frame_count = min(self.frame_count, max_frames)

  def __iter__(self):
    import av
    k = 0
    try:
      for k, frame in enumerate(self.container.decode(self.stream)):
        if self.max_frames is not None and k >= self.max_frames:
          return
        yield frame.to_ndarray(format='rgb24')
    except av.FFmpegError as e:
      raise VideoError(f'{self.path!r}: the video is damaged after frame {k} ({e.strerror or type(e).__name__}).') from None

  def close(self) -> None:
    self.container.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class VideoWriter:
  """H.264 MP4 (yuv420p, so every player shows it); odd sizes are padded by one pixel."""

  def __init__(self, path: str, fps: float):
    import av
    self.container = av.open(path, 'w')
    self.fps, self.stream = fps, None
    self._av = av

  def write(self, frame: np.ndarray) -> None:
    h, w = frame.shape[:2]
    if self.stream is None:
      self.stream = self.container.add_stream('libx264', rate=fractions.Fraction(self.fps).limit_denominator(1001))
      self.stream.width, self.stream.height = w + w % 2, h + h % 2
      self.stream.pix_fmt = 'yuv420p'
    if h % 2 or w % 2:
      frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode='edge')
    for packet in self.stream.encode(self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format='rgb24')):
      self.container.mux(packet)

  def close(self) -> None:
    if self.stream is not None:
      for packet in self.stream.encode():  # Flush.
        self.container.mux(packet)
    self.container.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
