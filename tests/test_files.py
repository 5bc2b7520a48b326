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


def test_a_staged_folder_replaces_an_earlier_one_whole_and_a_half_swap_is_completed(tmp_path):
  target = tmp_path / 'plots'
  target.mkdir()
  (target / 'old.png').write_text('old')
  with pytest.raises(KeyboardInterrupt):
    with files.staged_dir(str(target), replace=True) as staging:
      (tmp_path / 'plots.partial' / 'half.png').write_text('half')
      assert staging == str(tmp_path / 'plots.partial')
      raise KeyboardInterrupt
  assert sorted(os.listdir(tmp_path)) == ['plots'] and os.listdir(target) == ['old.png']
  with files.staged_dir(str(target), replace=True) as staging:
    (tmp_path / 'plots.partial' / 'new.png').write_text('new')
  assert sorted(os.listdir(tmp_path)) == ['plots'] and os.listdir(target) == ['new.png']
  target.rename(tmp_path / 'plots.old')  # Killed between replace_dir's two renames: only the earlier folder.
  (tmp_path / 'plots.partial').mkdir()
  with pytest.raises(RuntimeError):
    with files.staged_dir(str(target), replace=True):
      assert os.listdir(target) == ['new.png'] and not (tmp_path / 'plots.old').exists()  # Put back first.
      raise RuntimeError
  assert sorted(os.listdir(tmp_path)) == ['plots']
