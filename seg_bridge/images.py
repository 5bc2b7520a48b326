"""Reading any image a user may give as RGB uint8 [H, W, 3], or one clear error.

Reads files and http(s) URLs. Handles grayscale, RGBA / LA (composited on
white), palette, 16-bit and float images, and EXIF orientation (phones store
rotated pixels). A file that is missing, is not an image, is truncated, or is
larger than `max_pixels`, and a URL that cannot be fetched, raise
`ImageError` with one sentence naming it.
"""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
import warnings

import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 100_000_000  # 100 MP: about 300 MB as RGB, already slow for any finder.
MAX_DOWNLOAD_BYTES = 100_000_000


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


def fetch(url: str, timeout: float = 30.0) -> io.BytesIO:
  """The bytes at an http(s) URL, in memory, or ImageError."""
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      data = response.read(MAX_DOWNLOAD_BYTES + 1)
  except (urllib.error.URLError, OSError, ValueError) as e:
    reason = f'HTTP {e.code} {e.reason}' if isinstance(e, urllib.error.HTTPError) else getattr(e, 'reason', e)
    raise ImageError(f'{url}: could not download it ({reason}).') from None
  if len(data) > MAX_DOWNLOAD_BYTES:
    raise ImageError(f'{url}: larger than {MAX_DOWNLOAD_BYTES // 1_000_000} MB; download and downscale it first.')
  return io.BytesIO(data)


def load_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """Reads a file or http(s) URL as RGB uint8 [H, W, 3], upright per its EXIF orientation."""
  if is_url(path):
    source = fetch(path)
  elif os.path.isfile(path):
    source = path
  else:
    raise ImageError(f'{path}: no such file.')
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(source) as image:
        width, height = image.size
        if width * height > max_pixels:
          raise ImageError(f'{path}: {width}x{height} is larger than {max_pixels // 1_000_000} megapixels; '
                           'downscale it first.')
        image.load()
        return to_rgb_uint8(ImageOps.exif_transpose(image))
  except ImageError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning):
    raise ImageError(f'{path}: too many pixels to decode safely; downscale it first.') from None
  except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for unknown, broken and truncated files.
    raise ImageError(f'{path}: not a readable image ({e}).') from None
