"""Bounded HTTP(S) downloads, shared by vit_jax and seg_bridge (standard library only).

A download ends: a server that sends more than it should is cut off at
`max_bytes`, one that stalls or trickles once it moves fewer than
`min_rate` bytes a second over any `RATE_WINDOW` seconds, and every
transfer at `max_seconds`; each with DownloadError and one sentence.

    data = fetch('https://example.com/cat.jpg', max_bytes=100_000_000, max_seconds=120)
    fetch_file(url, 'sam_vit_b.pth', sha256='ec2d...', progress=True)   # resumable, atomic, checked

fetch_file writes into PATH.part, held by a lock (a second process waits,
then finds the file done), and renames it to PATH once complete and checked:
PATH is never half-written. A download cut off (lost connection, Ctrl-C,
SIGKILL) leaves PATH.part, which the next call resumes with a Range request
(or starts over where the server does not support one) and removes.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import io
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import BinaryIO

from vit_jax.files import hold_lock

READ_TIMEOUT = 30.0  # Seconds a connect or one read may wait.
CHUNK = 1 << 16
MIN_RATE = 10 * 1024  # Bytes a second, averaged over RATE_WINDOW: below it the server is too slow.
RATE_WINDOW = 60.0


class DownloadError(OSError):
  """A download failed, was too slow or too large; the message says which."""


def _reason(error: BaseException) -> str:
  if isinstance(error, urllib.error.HTTPError):
    return f'HTTP {error.code} {error.reason}'
  reason = getattr(error, 'reason', None) or error
  return ' '.join(str(reason).split())[:150] or type(error).__name__


def copy_url(url: str, out: BinaryIO, *, max_bytes: int, max_seconds: float, min_rate: float = MIN_RATE,
             offset: int = 0, on_start: Callable[[int | None, bool], None] = lambda size, resumed: None,
             on_chunk: Callable[[bytes], None] = lambda chunk: None) -> int:
  """Writes the body at `url` to `out` (from byte `offset` on, where the
  server honours a Range request); returns the bytes written. on_start(size
  of the whole body or None, resumed) before the first byte: not resumed,
  the body starts at 0; on_chunk(bytes) after each."""
  started = time.monotonic()
  window = (started, 0)  # (start, bytes by then) of the current rate window.
  total = 0
  try:
    request = urllib.request.Request(url, headers={'Range': f'bytes={offset}-'} if offset else {})
    with urllib.request.urlopen(request, timeout=min(READ_TIMEOUT, max_seconds)) as response:
      resumed = offset > 0 and response.status == 206 and (
          response.headers.get('Content-Range', '').startswith(f'bytes {offset}-'))
      length = response.headers.get('Content-Length')
      size = int(length) + (offset if resumed else 0) if length and length.isdigit() else None
      if size is not None and size > max_bytes:
        raise DownloadError(f'{url!r}: {size:,} bytes, more than the {max_bytes:,} allowed.')
      on_start(size, resumed)
      done = offset if resumed else 0
      while chunk := response.read1(CHUNK):  # What has arrived, not a full chunk: the bounds are checked often.
        total += len(chunk)
        now = time.monotonic()
        if done + total > max_bytes:
          raise DownloadError(f'{url!r}: more than the {max_bytes:,} bytes allowed.')
        if now - started > max_seconds:
          raise DownloadError(f'{url!r}: not complete after {max_seconds:g} s ({total:,} bytes); the server is too '
                              'slow or never ends.')
        if now - window[0] >= RATE_WINDOW:
          if (total - window[1]) / (now - window[0]) < min_rate:
            raise DownloadError(f'{url!r}: slower than {min_rate / 1024:.3g} KiB/s over {now - window[0]:.0f} s '
                                f'({total:,} bytes so far); the server or the connection is too slow.')
          window = (now, total)
        out.write(chunk)
        on_chunk(chunk)
      if size is not None and done + total != size:
        raise DownloadError(f'{url!r}: the connection closed after {done + total:,} of {size:,} bytes.')
  except DownloadError:
    raise
  except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
    # OSError covers time-outs and resets; ValueError and InvalidURL malformed URLs such as 'http://[::1'.
    raise DownloadError(f'{url!r}: could not download it ({_reason(e)}).') from None
  return total


def fetch(url: str, *, max_bytes: int, max_seconds: float, min_rate: float = MIN_RATE) -> bytes:
  """The body at `url`, in memory, or DownloadError."""
  buffer = io.BytesIO()
  copy_url(url, buffer, max_bytes=max_bytes, max_seconds=max_seconds, min_rate=min_rate)
  return buffer.getvalue()


def fetch_file(url: str, path: str, *, sha256: str | None = None, max_bytes: int = 10_000_000_000,
               max_seconds: float = 6 * 3600, min_rate: float = MIN_RATE, progress: bool = True) -> None:
  """Downloads `url` to `path` (see the module docstring), checking its
  SHA-256 where given; DownloadError, and no `path`, otherwise."""
  from tqdm import tqdm
  part = path + '.part'
  with hold_lock(part, wait=True) as out:  # Opened for appending: what an earlier, cut-off download wrote stays.
    if os.path.exists(path):  # Another process finished it while this one waited.
      _remove(part)
      return
    for stale in glob.glob(os.path.join(glob.escape(os.path.dirname(path) or '.'),
                                        '.' + glob.escape(os.path.basename(path)) + '*.tmp')):
      _remove(stale)  # Left by versions that downloaded into a temporary file.
    digest, have = hashlib.sha256(), os.path.getsize(part)
    with open(part, 'rb') as earlier:
      for block in iter(lambda: earlier.read(1 << 20), b''):
        digest.update(block)
    bar = tqdm(unit='B', unit_scale=True, unit_divisor=1024, desc=os.path.basename(path), disable=not progress,
               leave=False, initial=have)

    def on_start(size, resumed):
      nonlocal digest
      if not resumed:  # A server without Range support: start over.
        out.seek(0)
        out.truncate()
        digest = hashlib.sha256()
        bar.reset()
      bar.total = size
      bar.refresh()

    def on_chunk(chunk):
      digest.update(chunk)
      bar.update(len(chunk))
    try:
      copy_url(url, out, max_bytes=max_bytes, max_seconds=max_seconds, min_rate=min_rate, offset=have,
               on_start=on_start, on_chunk=on_chunk)
      out.flush()
      os.fsync(out.fileno())
      if sha256 is not None and digest.hexdigest() != sha256.lower():
        _remove(part)
        raise DownloadError(f'{url!r}: the download is damaged or not the expected file (SHA-256 '
                            f'{digest.hexdigest()[:12]}..., expected {sha256[:12]}...); nothing was kept.')
      os.replace(part, path)
    except BaseException:
      out.flush()  # What arrived is kept for the next call to resume.
      if os.path.exists(part) and not os.path.getsize(part):
        _remove(part)  # Nothing to resume.
      raise
    finally:
      bar.close()


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except FileNotFoundError:
    pass
