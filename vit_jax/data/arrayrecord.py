r"""Writes an image-folder data set as ArrayRecord shards, for streaming where a
million small files are slow to open (or the folder is a .tar.gz).

    python -m vit_jax.data.arrayrecord folder:/data/imagenet /data/in1k-ar
    python train.py ... --config.data.source=arrayrecord:/data/in1k-ar

OUT gets SPLIT-KKKKK-of-NNNNN.array_record files (records: a 4-byte
little-endian label, then the image file's bytes, not re-encoded) and
index.json (class names, per split its shards with their record counts and
byte sizes, and a SHA-256 of the index: the reader refuses a shard cut short
and an index edited by hand). The folder appears complete or not at all: it
is written in OUT.partial beside OUT and renamed, and any failure or
interrupt removes OUT.partial (a SIGKILLed one goes at the next run).
Exit status: 0 written; 2 a source that cannot be read, OUT exists, a bad
option, a full disk or a folder that cannot be written; 130 / 143 Ctrl-C /
SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import struct
import sys

from vit_jax.data import DataError
from vit_jax.data.archives import tar_entries
from vit_jax.files import atomic_write, staged_dir
from vit_jax.images import IMAGE_SUFFIXES
from vit_jax.interrupts import StopRequest
from vit_jax.data.sources import INDEX, index_digest


def _entries(path: str, splits: list[str]):
  """(split, class, name, read()) for every image of `splits`, directories
  sorted, archives in their order."""
  if os.path.isdir(path):
    for split in splits:
      root = os.path.join(path, split)
      for cls in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for name in sorted(os.listdir(os.path.join(root, cls))):
          full = os.path.join(root, cls, name)
          if name.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(full):
            yield split, cls, full, lambda full=full: open(full, 'rb').read()
    return
  for member, content in tar_entries(path):
    parts = member.name.strip('/').split('/')
    if member.isfile() and len(parts) >= 3 and parts[-3] in splits and parts[-1].lower().endswith(IMAGE_SUFFIXES):
      yield parts[-3], parts[-2], member.name, lambda content=content: content


def convert(source: str, out: str, splits: list[str], records_per_shard: int = 5000) -> dict:
  """Writes the shards and index of `source` ('folder:PATH') into `out`; returns
  the index. Staged in OUT.partial, which any failure removes (DataError, or
  OSError: a full disk, no permission)."""
  from array_record.python.array_record_module import ArrayRecordWriter
  if records_per_shard < 1:
    raise DataError(f'--records-per-shard {records_per_shard}: give a positive number of images per shard.')
  kind, _, path = source.partition(':')
  if kind != 'folder' or not os.path.exists(path):
    raise DataError(f'{source!r}: give folder:PATH, a directory or .tar/.tar.gz of split/class/image files.')
  classes = sorted({cls for _, cls, _, _ in _entries(path, splits[:1])})  # The first split's: the labels.
  if not classes:
    raise DataError(f'{path!r} has no images under {splits[0]}/CLASS/.')
  with staged_dir(out) as staging:  # Also on Ctrl-C and SIGTERM (main() turns it into KeyboardInterrupt).
    return _write(path, staging, splits, classes, records_per_shard, ArrayRecordWriter)


def _write(path: str, staging: str, splits: list[str], classes: list[str], records_per_shard: int, writer_class):
  counts = {s: [] for s in splits}  # Records per shard.
  shards, writer = {s: [] for s in splits}, None
  try:
    for split, cls, name, read in _entries(path, splits):
      if cls not in classes:
        raise DataError(f'{path!r}: the class {cls!r} of {split}/ is not in {splits[0]}/.')
      if not shards[split] or counts[split][-1] == records_per_shard:
        if writer is not None:
          _close(writer)
        shards[split].append(f'{split}-{len(shards[split]):05d}.array_record')
        counts[split].append(0)
        writer = writer_class(os.path.join(staging, shards[split][-1]), 'group_size:1')
      writer.write(struct.pack('<i', classes.index(cls)) + read())
      counts[split][-1] += 1
  finally:
    if writer is not None:
      _close(writer)
  empty = [s for s in splits if not counts[s]]
  if empty:
    raise DataError(f'{path!r} has no images under {", ".join(empty)}/CLASS/.')
  index = {'class_names': classes, 'source': os.path.abspath(path),
           'splits': {s: {'shards': shards[s], 'count': sum(counts[s]), 'counts': counts[s],
                          'sizes': [os.path.getsize(os.path.join(staging, shard)) for shard in shards[s]]}
                      for s in splits}}
  index['sha256'] = index_digest(index)
  atomic_write(os.path.join(staging, INDEX), json.dumps(index, indent=1).encode())
  return index


def _close(writer) -> None:
  """Closes a shard; the writer reports a failed write (a full disk) only here, as a bare RuntimeError."""
  try:
    writer.close()
  except RuntimeError as e:
    raise OSError(errno.EIO, ' '.join(str(e).split())[:150] or 'the shard could not be written') from None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m vit_jax.data.arrayrecord', description=__doc__.split('\n')[0])
  parser.add_argument('source', help='folder:PATH, a directory or .tar/.tar.gz of split/class/image files')
  parser.add_argument('out', help='the folder to write (must not exist)')
  parser.add_argument('--splits', default='train,test', help='comma-separated; the first gives the classes')
  parser.add_argument('--records-per-shard', type=int, default=5000, help='images per shard (default 5000)')
  args = parser.parse_args(argv)
  if os.path.exists(args.out):
    print(f'error: {args.out!r} exists; give a new folder.', file=sys.stderr)
    return 2
  stop = StopRequest()
  stop.install()  # SIGTERM too ends in KeyboardInterrupt: the staging folder is removed.
  try:
    index = convert(args.source, args.out, args.splits.split(','), args.records_per_shard)
  except DataError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except OSError as e:  # A full disk, a read-only or missing parent folder.
    print(f'error: cannot write {args.out!r} ({e.strerror or e}); nothing was kept. Free space, or give a folder '
          'you can write to.', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('Interrupted; nothing was kept.', file=sys.stderr)
    return stop.exit_status
  counts = ', '.join(f'{split} {entry["count"]:,}' for split, entry in index['splits'].items())
  print(f'Wrote {args.out!r}: {counts} images in {len(index["class_names"])} classes.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
