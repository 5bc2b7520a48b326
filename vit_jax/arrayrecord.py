r"""Writes an image-folder data set as ArrayRecord shards, for streaming where a
million small files are slow to open (or the folder is a .tar.gz).

    python -m vit_jax.arrayrecord folder:/data/imagenet /data/in1k-ar
    python train.py ... --config.data.source=arrayrecord:/data/in1k-ar

OUT gets SPLIT-KKKKK-of-NNNNN.array_record files (records: a 4-byte
little-endian label, then the image file's bytes, not re-encoded) and
index.json (class names, and per split its shards and record count). The
folder appears complete or not at all: it is written beside OUT and renamed.
Exit status: 0 written; 2 a source that cannot be read, or OUT exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys

from vit_jax.data import DataError, tar_entries
from vit_jax.images import IMAGE_SUFFIXES
from vit_jax.sources import INDEX


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
  """Writes the shards and index of `source` ('folder:PATH') into `out`; returns the index."""
  from array_record.python.array_record_module import ArrayRecordWriter
  kind, _, path = source.partition(':')
  if kind != 'folder' or not os.path.exists(path):
    raise DataError(f'{source!r}: give folder:PATH, a directory or .tar/.tar.gz of split/class/image files.')
  classes = sorted({cls for _, cls, _, _ in _entries(path, splits[:1])})  # The first split's: the labels.
  if not classes:
    raise DataError(f'{path!r} has no images under {splits[0]}/CLASS/.')
  staging = out.rstrip('/') + '.partial'
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  counts, shards, writers = {s: 0 for s in splits}, {s: [] for s in splits}, {}
  for split, cls, name, read in _entries(path, splits):
    if cls not in classes:
      raise DataError(f'{path!r}: the class {cls!r} of {split}/ is not in {splits[0]}/.')
    if counts[split] % records_per_shard == 0:
      if split in writers:
        writers[split].close()
      shards[split].append(f'{split}-{len(shards[split]):05d}.array_record')
      writers[split] = ArrayRecordWriter(os.path.join(staging, shards[split][-1]), 'group_size:1')
    writers[split].write(struct.pack('<i', classes.index(cls)) + read())
    counts[split] += 1
  for writer in writers.values():
    writer.close()
  empty = [s for s in splits if not counts[s]]
  if empty:
    shutil.rmtree(staging)
    raise DataError(f'{path!r} has no images under {", ".join(empty)}/CLASS/.')
  index = {'class_names': classes, 'source': os.path.abspath(path),
           'splits': {s: {'shards': shards[s], 'count': counts[s]} for s in splits}}
  with open(os.path.join(staging, INDEX), 'w') as f:
    json.dump(index, f, indent=1)
  os.rename(staging, out)
  return index


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m vit_jax.arrayrecord', description=__doc__.split('\n')[0])
  parser.add_argument('source', help='folder:PATH, a directory or .tar/.tar.gz of split/class/image files')
  parser.add_argument('out', help='the folder to write (must not exist)')
  parser.add_argument('--splits', default='train,test', help='comma-separated; the first gives the classes')
  parser.add_argument('--records-per-shard', type=int, default=5000)
  args = parser.parse_args(argv)
  if os.path.exists(args.out):
    print(f'error: {args.out!r} exists; give a new folder.', file=sys.stderr)
    return 2
  try:
    index = convert(args.source, args.out, args.splits.split(','), args.records_per_shard)
  except DataError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  counts = ', '.join(f'{split} {entry["count"]:,}' for split, entry in index['splits'].items())
  print(f'Wrote {args.out!r}: {counts} images in {len(index["class_names"])} classes.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
