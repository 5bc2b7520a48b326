"""Reading any image a user may give as RGB uint8 [H, W, 3], or one clear error.

Handles grayscale, RGBA / LA (composited on white), palette, 16-bit and
float images, and EXIF orientation (phones store rotated pixels). A file
that is not an image, is truncated, or is larger than `max_pixels` raises
`ImageError` with one sentence naming the file.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 100_000_000  # 100 MP: about 300 MB as RGB, already slow for any finder.


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


def load_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """Reads `path` as RGB uint8 [H, W, 3], upright per its EXIF orientation."""
  if not os.path.isfile(path):
    raise ImageError(f'{path}: no such file.')
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(path) as image:
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
