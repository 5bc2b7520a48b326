"""The one image reader of both packages: any image a user or a data set
gives, as RGB uint8 [H, W, 3], or one clear error (standard library, numpy
and PIL only).

Reads files, bytes (members of archives) and http(s) URLs. Handles grayscale,
RGBA / LA (composited on white), palette, 16-bit and float images, and EXIF
orientation (phones store rotated pixels). A file that is missing, a folder,
a broken link, not an image, truncated, or larger than `max_pixels`, and a
URL that cannot be fetched in time, raise `ImageError` with one sentence
naming it (names quoted, so a control character cannot break the line).

    image = load_image('photo.jpg')                   # or 'https://...'
    image = decode(data, name='train/cat/0001.jpg')   # bytes of an image file
"""

from __future__ import annotations

import errno
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from vit_jax import download

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')  # What a folder's images end with.
MAX_PIXELS = 100_000_000  # 100 MP: about 300 MB as RGB, already slow for any finder.
MAX_DOWNLOAD_BYTES = 100_000_000
MAX_DOWNLOAD_SECONDS = 120.0  # The whole download: a server that trickles cannot hold a run.


class ImageError(ValueError):
  """An input image cannot be used; the message says which and why."""


def check_rgb_uint8(image: np.ndarray) -> None:
  """The numpy convention of seg_bridge: RGB uint8 [H, W, 3], else ValueError."""
  if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'image must be RGB uint8 [H, W, 3], got {getattr(image, "dtype", type(image))} '
                     f'{getattr(image, "shape", "")}.')


def to_rgb_uint8(image: Image.Image) -> np.ndarray:
  """A decoded PIL image in any mode -> uint8 [H, W, 3]."""
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
    values = np.asarray(image, np.float64)
    high = 65535.0 if image.mode.startswith('I;16') or values.max() > 255 else 255.0
    if image.mode == 'F' and values.max() <= 1.0:
      high = 1.0
    gray = np.clip(values / high * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if image.mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA'):
    background = Image.new('RGBA', image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, image.convert('RGBA'))
  return np.array(image.convert('RGB'), np.uint8)  # A writable copy (torch warns on read-only arrays).


def is_url(source: str) -> bool:
  return source.startswith(('http://', 'https://'))


def not_a_file(path: str) -> str:
  """Why `path` is not a file to read, in a few words."""
  if os.path.isdir(path):
    return 'is a folder, not a file'
  if os.path.islink(path):
    try:
      os.stat(path)
    except OSError as e:
      return 'is a symbolic link loop' if e.errno == errno.ELOOP else 'is a broken symbolic link'
  if os.path.exists(path):
    return 'is not a regular file'
  return 'no such file'


def load_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """Reads a file or http(s) URL as RGB uint8 [H, W, 3], upright per its EXIF orientation."""
  if is_url(path):
    try:
      source = io.BytesIO(download.fetch(path, max_bytes=MAX_DOWNLOAD_BYTES, max_seconds=MAX_DOWNLOAD_SECONDS))
    except download.DownloadError as e:
      raise ImageError(str(e)) from None
  elif os.path.isfile(path):
    source = path
  else:
    raise ImageError(f'{path!r}: {not_a_file(path)}.')
  return decode(source, path, max_pixels)


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
  """The whole image [H, W, 3] at size x size (bicubic; unchanged where it is already)."""
  if pixels.shape[:2] == (size, size):
    return pixels
  return np.asarray(Image.fromarray(pixels).resize((size, size), Image.BICUBIC))


def decode(source: str | bytes | io.IOBase, name: str, max_pixels: int = MAX_PIXELS,
           draft: tuple[int, int] | None = None) -> np.ndarray:
  """An image file (a path, its bytes, or a binary file) as RGB uint8
  [H, W, 3], upright; ImageError naming `name` where it cannot be read.
  With `draft` (width, height), a JPEG is decoded at the smallest of 1/1,
  1/2, 1/4, 1/8 scale that still covers it (PIL's draft mode: faster)."""
  if isinstance(source, bytes):
    source = io.BytesIO(source)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(source) as image:
        width, height = image.size
        if width * height > max_pixels:
          raise ImageError(f'{name!r}: {width}x{height} is larger than {max_pixels // 1_000_000} megapixels; '
                           'downscale it first.')
        if draft is not None:
          image.draft('RGB', draft)
        image.load()
        return to_rgb_uint8(ImageOps.exif_transpose(image))
  except ImageError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning):
    raise ImageError(f'{name!r}: too many pixels to decode safely; downscale it first.') from None
  except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for unknown, broken and truncated files.
    raise ImageError(f'{name!r}: not a readable image ({" ".join(str(e).split())}).') from None
