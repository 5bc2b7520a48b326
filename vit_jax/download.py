"""Bounded HTTP(S) downloads, shared by vit_jax and seg_bridge (standard library only).

A download ends: a server that trickles a byte every few seconds, or sends
more than it should, is cut off at `max_seconds` (the whole transfer, not
one read) or `max_bytes`, with DownloadError and one sentence.

    data = fetch('https://example.com/cat.jpg', max_bytes=100_000_000, max_seconds=120)
    fetch_file(url, 'sam_vit_b.pth', sha256='ec2d...', progress=True)   # atomic, checked
"""

from __future__ import annotations

import hashlib
import http.client
import io
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import BinaryIO

from vit_jax.files import atomic_file

READ_TIMEOUT = 30.0  # Seconds a connect or one read may wait.
CHUNK = 1 << 16


class DownloadError(OSError):
  """A download failed, was too slow or too large; the message says which."""


def _reason(error: BaseException) -> str:
  if isinstance(error, urllib.error.HTTPError):
    return f'HTTP {error.code} {error.reason}'
  reason = getattr(error, 'reason', None) or error
  return ' '.join(str(reason).split())[:150] or type(error).__name__


def copy_url(url: str, out: BinaryIO, *, max_bytes: int, max_seconds: float,
             on_start: Callable[[int | None], None] = lambda size: None,
             on_chunk: Callable[[bytes], None] = lambda chunk: None) -> int:
  """Writes the body at `url` to `out`; returns its size. on_start(size or
  None, from Content-Length) before the first byte, on_chunk(bytes) after each."""
  deadline = time.monotonic() + max_seconds
  total = 0
  try:
    with urllib.request.urlopen(url, timeout=min(READ_TIMEOUT, max_seconds)) as response:
      length = response.headers.get('Content-Length')
      size = int(length) if length and length.isdigit() else None
      if size is not None and size > max_bytes:
        raise DownloadError(f'{url!r}: {size:,} bytes, more than the {max_bytes:,} allowed.')
      on_start(size)
      while chunk := response.read1(CHUNK):  # What has arrived, not a full chunk: the deadline is checked often.
        total += len(chunk)
        if total > max_bytes:
          raise DownloadError(f'{url!r}: more than the {max_bytes:,} bytes allowed.')
        if time.monotonic() > deadline:
          raise DownloadError(f'{url!r}: not complete after {max_seconds:g} s ({total:,} bytes); the server is too '
                              'slow or never ends.')
        out.write(chunk)
        on_chunk(chunk)
      if size is not None and total != size:
        raise DownloadError(f'{url!r}: the connection closed after {total:,} of {size:,} bytes.')
  except DownloadError:
    raise
  except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
    # OSError covers time-outs and resets; ValueError and InvalidURL malformed URLs such as 'http://[::1'.
    raise DownloadError(f'{url!r}: could not download it ({_reason(e)}).') from None
  return total


def fetch(url: str, *, max_bytes: int, max_seconds: float) -> bytes:
  """The body at `url`, in memory, or DownloadError."""
  buffer = io.BytesIO()
  copy_url(url, buffer, max_bytes=max_bytes, max_seconds=max_seconds)
  return buffer.getvalue()


def fetch_file(url: str, path: str, *, sha256: str | None = None, max_bytes: int = 10_000_000_000,
               max_seconds: float = 6 * 3600, progress: bool = True) -> None:
  """Downloads `url` to `path` atomically (absent until complete), checking
  its SHA-256 where given; DownloadError, and no file, otherwise."""
  from tqdm import tqdm
  digest = hashlib.sha256()
  bar = tqdm(unit='B', unit_scale=True, unit_divisor=1024, desc=path.rsplit('/', 1)[-1], disable=not progress,
             leave=False)

  def on_start(size):
    bar.total = size
    bar.refresh()

  def on_chunk(chunk):
    digest.update(chunk)
    bar.update(len(chunk))
  try:
    with atomic_file(path) as out:
      copy_url(url, out, max_bytes=max_bytes, max_seconds=max_seconds, on_start=on_start, on_chunk=on_chunk)
      if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise DownloadError(f'{url!r}: the download is damaged or not the expected file (SHA-256 '
                            f'{digest.hexdigest()[:12]}..., expected {sha256[:12]}...); nothing was kept.')
  finally:
    bar.close()
