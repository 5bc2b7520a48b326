"""The atomic writes name the file the caller asked for when the disk refuses
(a read-only folder, a full disk), never their temporary file, and leave none."""

import errno
import os
import subprocess

import pytest

from conftest import mounted
from vit_jax import files


def test_a_read_only_folder_names_the_file_asked_for(tmp_path):
  where = mounted('read-only', tmp_path / 'ro')
  try:
    with pytest.raises(OSError) as raised:
      files.atomic_write(str(where / 'metrics.jsonl'), b'{}')
    assert raised.value.errno == errno.EROFS and raised.value.filename == str(where / 'metrics.jsonl')
  finally:
    subprocess.run(['umount', str(where)], check=True)


def test_a_full_disk_names_the_file_asked_for_and_leaves_no_temporary_file(tmp_path):
  where = mounted('tmpfs', tmp_path / 'small', size='64k')
  try:
    with pytest.raises(OSError) as raised:
      files.atomic_write(str(where / 'report.json'), b'x' * 200_000)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(where / 'report.json')
    assert os.listdir(where) == []
  finally:
    subprocess.run(['umount', str(where)], check=True)
