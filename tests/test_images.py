"""The one image reader (vit_jax.images): every odd or bad input a user or a data set may give."""

import io
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from vit_jax.images import ImageError, load_image


def save(tmp_path, name, image, **kwargs):
  path = tmp_path / name
  image.save(path, **kwargs)
  return str(path)


@pytest.mark.parametrize('mode,value,expected', [
    ('L', 100, (100, 100, 100)),
    ('RGB', (10, 20, 30), (10, 20, 30)),
    ('RGBA', (10, 20, 30, 0), (255, 255, 255)),  # Fully transparent: the white background.
    ('RGBA', (10, 20, 30, 255), (10, 20, 30)),
    ('LA', (50, 255), (50, 50, 50)),
])
def test_modes_become_rgb_uint8(tmp_path, mode, value, expected):
  image = load_image(save(tmp_path, 'x.png', Image.new(mode, (7, 5), value)))
  assert image.shape == (5, 7, 3) and image.dtype == np.uint8
  assert tuple(image[2, 3]) == expected


def test_palette_and_sixteen_bit(tmp_path):
  palette = Image.new('P', (4, 4), 0)
  palette.putpalette([200, 100, 50] + [0] * 765)
  assert tuple(load_image(save(tmp_path, 'p.png', palette))[0, 0]) == (200, 100, 50)
  sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
  assert tuple(load_image(save(tmp_path, 's.png', sixteen))[0, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
  image = Image.new('RGB', (40, 20), (255, 0, 0))
  exif = image.getexif()
  exif[0x0112] = 6  # Rotate 90 degrees clockwise to display.
  loaded = load_image(save(tmp_path, 'r.jpg', image, exif=exif))
  assert loaded.shape == (40, 20, 3)


def test_not_an_image_truncated_missing_and_huge_are_one_sentence(tmp_path):
  text = tmp_path / 'notes.jpg'
  text.write_text('hello')
  with pytest.raises(ImageError, match="notes.jpg': not a readable image"):
    load_image(str(text))
  buffer = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, 'JPEG')
  truncated = tmp_path / 'cut.jpg'
  truncated.write_bytes(buffer.getvalue()[:300])
  with pytest.raises(ImageError, match="cut.jpg': not a readable image"):
    load_image(str(truncated))
  with pytest.raises(ImageError, match='no such file'):
    load_image(str(tmp_path / 'missing.png'))
  with pytest.raises(ImageError, match='larger than'):
    load_image(save(tmp_path, 'big.png', Image.new('RGB', (3000, 1000))), max_pixels=2_000_000)


def test_urls_are_read_and_bad_urls_are_one_sentence(http_folder):
  folder, url = http_folder
  array = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
  Image.fromarray(array).save(folder / 'photo.png')
  (folder / 'notes.txt').write_text('not an image')
  np.testing.assert_array_equal(load_image(f'{url}/photo.png'), array)
  with pytest.raises(ImageError, match=r"/missing.png': could not download it \(HTTP 404 "):
    load_image(f'{url}/missing.png')
  with pytest.raises(ImageError, match="notes.txt': not a readable image"):
    load_image(f'{url}/notes.txt')
  with pytest.raises(ImageError, match=r'could not download it \(.*refused'):
    load_image('http://127.0.0.1:1/photo.png')  # Nothing listens there.


def test_one_reader_and_the_packages_depend_one_way():
  """vit_jax never imports seg_bridge (seg_bridge builds on vit_jax), and
  vit_jax/images.py is the only place that decodes an image file."""
  probe = ('import sys, vit_jax.attention, vit_jax.data, vit_jax.training.loop, vit_jax.images; '
           'print(sorted(m for m in sys.modules if m.startswith("seg_bridge")))')
  result = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and result.stdout.strip() == '[]', result.stderr
  sources = {p: p.read_text() for p in pathlib.Path(ROOT).glob('**/*.py')
             if '.venv' not in p.parts and 'tests' not in p.parts}
  imports_seg_bridge = re.compile(r'^\s*(from|import) seg_bridge', re.MULTILINE)
  assert not [p for p, text in sources.items() if 'vit_jax' in p.parts and imports_seg_bridge.search(text)]
  assert [p.relative_to(ROOT).as_posix() for p, text in sources.items() if 'Image.open(' in text] == ['vit_jax/images.py']
