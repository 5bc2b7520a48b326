"""Video files as a user gives them: one without pictures is said as such, and
an odd-sized one keeps its size everywhere but in the H.264 overlay, which
says its own."""

import json

import numpy as np
import pytest

av = pytest.importorskip('av')
pytest.importorskip('pycocotools')

from seg_bridge.tracking import FrameResult  # noqa: E402
from seg_bridge.video_io import VideoError, VideoReader  # noqa: E402
from seg_bridge.video_outputs import VideoOutputs  # noqa: E402


def sound_only(path):
  with av.open(str(path), 'w') as container:
    stream = container.add_stream('aac', rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
    frame.rate = 8000
    for packet in [*stream.encode(frame), *stream.encode()]:
      container.mux(packet)
  return str(path)


@pytest.mark.parametrize('make,phrase', [
    (sound_only, 'holds no video stream (only sound or data); give a video file.'),
    (lambda path: path.mkdir() or str(path), 'is a folder, not a file.'),
    (lambda path: str(path), 'no such file.'),
])
def test_a_file_that_is_no_video_is_one_line(tmp_path, make, phrase):
  path = make(tmp_path / 'clip.mp4')
  with pytest.raises(VideoError) as raised:
    VideoReader(path)
  assert str(raised.value) == f'{path!r}: {phrase}'


def test_an_odd_sized_video_keeps_its_size_and_the_overlay_says_its_own(tmp_path):
  outputs = VideoOutputs(str(tmp_path / 'clip'), fps=10.0)
  for k in range(3):
    outputs.add(np.full((63, 95, 3), 40 * k, np.uint8), FrameResult(index=k, objects=[], key_frame=k == 0))
  outputs.close({'source': 'clip.mp4'})
  record = json.loads((tmp_path / 'clip' / 'result.json').read_text())
  assert record['size'] == [63, 95] and record['overlay_size'] == [64, 96]
  with VideoReader(str(tmp_path / 'clip' / 'overlay.mp4')) as overlay:
    assert overlay.size == (64, 96) and len(list(overlay)) == 3
  from PIL import Image
  assert np.asarray(Image.open(tmp_path / 'clip' / 'ids' / '000002.png')).shape == (63, 95)
