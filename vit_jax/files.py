"""Crash-safe file writes, shared by vit_jax and seg_bridge (standard library only).

A reader, or a run started after a crash, sees the old version or the new one,
never a mixture:

    atomic_write('report.json', data)              # one file
    with atomic_file('weights.pth') as f: ...      # one file, streamed
    replace_dir(new, 'out/dog', old='out/.old')    # a folder of files, in one rename
    with staged_dir('dataset') as staging: ...     # a new folder, filled in 'dataset.partial'
    with staged_dir('plots', replace=True) as staging: ...   # the same, in place of an earlier one
    sha256_tree(folder)                            # {relative path: digest}

and one process at a time in a folder:

    with hold_lock('workdir/.lock'):               # files.Busy while another holds it (or wait=True)
      ...
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, BinaryIO


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[BinaryIO]:
  """A binary file to write that appears at `path` only when the block ends
  without an exception (flushed to disk first); otherwise nothing changes."""
  directory = os.path.dirname(os.path.abspath(path))
  try:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path), suffix='.tmp')
  except OSError as e:
    raise _named(e, path) from None
  try:
    with os.fdopen(fd, 'wb') as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode.
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):  # A full disk: say which file.
      raise _named(e, path) from None
    raise


def _named(error: OSError, path: str) -> OSError:
  """`error` (of the same class: PermissionError, ...) naming `path`, not a temporary file."""
  return type(error)(error.errno, error.strerror or str(error), path)


def atomic_write(path: str, data: bytes) -> None:
  """Writes `data` to `path` so that readers see the old file or the new one."""
  with atomic_file(path) as f:
    f.write(data)


@contextlib.contextmanager
def staged_dir(target: str, replace: bool = False) -> Iterator[str]:
  """A folder to fill (TARGET.partial) that is renamed to `target` when the
  block ends without an exception, and removed otherwise (Ctrl-C included);
  one left by a killed process is removed first. `target` must not exist,
  unless `replace`: then the new folder takes its place through replace_dir
  (the earlier one kept as TARGET.old until it has), and a swap a killed
  process left half done is completed first (restore_dir)."""
  target = target.rstrip('/')
  staging, old = target + '.partial', target + '.old'
  if replace:
    restore_dir(old, target)
  shutil.rmtree(staging, ignore_errors=True)
  try:
    os.makedirs(staging)
    yield staging
    if replace:
      replace_dir(staging, target, old)
    else:
      os.rename(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def replace_dir(new: str, target: str, old: str) -> None:
  """Puts the complete folder `new` at `target`. An existing `target` is first
  renamed to `old` (same file system, not existing) and deleted after, so a
  crash in between leaves `target` absent, never half-filled;
  `restore_dir(old, target)` then puts the earlier folder back."""
  if os.path.lexists(target):
    os.rename(target, old)
  os.rename(new, target)
  shutil.rmtree(old, ignore_errors=True)


def restore_dir(old: str, target: str) -> None:
  """Completes what an interrupted `replace_dir` left: the earlier folder goes
  back where no new one arrived, and is deleted otherwise."""
  if not os.path.lexists(old):
    return
  if os.path.lexists(target):
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.rename(old, target)


def sha256_tree(root: str, skip: tuple[str, ...] = ()) -> dict[str, str]:
  """SHA-256 of every file under `root` (but those named in `skip`), by
  '/'-separated path relative to `root`."""
  digests = {}
  for directory, _, names in os.walk(root):
    for name in names:
      path = os.path.join(directory, name)
      relative = os.path.relpath(path, root).replace(os.sep, '/')
      if relative in skip:
        continue
      digest = hashlib.sha256()
      with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
          digest.update(chunk)
      digests[relative] = digest.hexdigest()
  return digests


class Busy(OSError):
  """Another process holds the lock."""


def hold_lock(path: str, exclusive: bool = True, wait: bool = False) -> IO:
  """A file open for appending (binary where `wait`) that holds an advisory
  lock on `path` (shared where not `exclusive`) until it is closed, or the
  process ends however it ends; Busy where another process holds a
  conflicting one, unless `wait`: then it waits for it. Use it in `with`."""
  handle = open(path, 'ab' if wait else 'a')
  try:
    import fcntl
    fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
  except ImportError:  # Windows: no advisory locks; one run at a time is then the user's care.
    pass
  except OSError:
    handle.close()
    raise Busy(path) from None
  return handle
