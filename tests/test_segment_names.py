"""segment.py with odd names: control characters in file names and prompts
stay on one line (quoted), a folder, a link loop or a broken link named like
an image each say what they are, and one image given twice is done once."""

import os

import pytest

pytest.importorskip('torch')
pytest.importorskip('pycocotools')

from test_segment_hardening import assert_complete, photo  # noqa: E402


def segment(tmp_path, clipseg_dir, sam2_dir, capsys, *inputs, prompt='dog'):
  import segment as command
  out = tmp_path / 'out'
  status = command.main(['--prompt', prompt, '--out', str(out), '--finder-model', clipseg_dir, '--sam2-model',
                         sam2_dir, '--threshold', '0', '--min-score', '0', '--device', 'cpu', *map(str, inputs)])
  captured = capsys.readouterr()
  return status, captured.out.splitlines(), captured.err.splitlines(), out


def test_control_characters_in_names_and_prompts_stay_on_one_line(tmp_path, clipseg_dir, sam2_dir, capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  photo(folder / 'two\nlines.png')
  photo(folder / 'tab\there.png', seed=1)
  (folder / 'bad\rreturn.jpg').write_text('not an image')
  (folder / 'bell\x07.jpg').write_bytes(b'')
  status, out_lines, err_lines, out = segment(tmp_path, clipseg_dir, sam2_dir, capsys, folder,
                                              prompt='dog\nhouse, cap\rx')
  assert status == 1
  done = [line for line in out_lines if line.startswith("'")]
  assert len(done) == 2 and all(os.path.join(str(folder), '') in line for line in done)
  assert any(repr(str(folder / 'two\nlines.png')) in line for line in done)
  assert all("'dog\\nhouse'" in line or 'nothing' in line for line in done)
  errors = [line for line in err_lines if line.startswith('error: ')]
  bad, bell = str(folder / 'bad\rreturn.jpg'), str(folder / 'bell\x07.jpg')
  assert sorted(errors) == sorted([f'error: {bad!r}: not a readable image (cannot identify image file {bad!r}).',
                                   f'error: {bell!r}: not a readable image (cannot identify image file {bell!r}).'])
  assert len(assert_complete(out)) == 2


def test_things_named_like_images_say_what_they_are(tmp_path, clipseg_dir, sam2_dir, capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  (folder / 'folder.jpg').mkdir()
  os.symlink('loop_b.jpg', folder / 'loop_a.jpg')
  os.symlink('loop_a.jpg', folder / 'loop_b.jpg')
  os.symlink('gone.png', folder / 'broken.png')
  photo(folder / 'real.png')
  status, _, err_lines, out = segment(tmp_path, clipseg_dir, sam2_dir, capsys, folder, tmp_path / 'absent.png')
  assert status == 1
  said = {line.split("': ")[0].rsplit('/', 1)[-1]: line.split("': ", 1)[1] for line in err_lines
          if line.startswith('error: ')}
  assert said == {'folder.jpg': 'is a folder, not a file.', 'loop_a.jpg': 'is a symbolic link loop.',
                  'loop_b.jpg': 'is a symbolic link loop.', 'broken.png': 'is a broken symbolic link.',
                  'absent.png': 'no such file.'}, err_lines
  assert assert_complete(out) == ['real']


def test_one_image_given_by_several_paths_is_done_once(tmp_path, clipseg_dir, sam2_dir, capsys, monkeypatch):
  folder = tmp_path / 'in'
  (folder / 'sub').mkdir(parents=True)
  photo(folder / 'dog.png')
  os.symlink(folder / 'dog.png', folder / 'sub' / 'link.png')
  monkeypatch.chdir(folder / 'sub')
  status, out_lines, err_lines, out = segment(tmp_path, clipseg_dir, sam2_dir, capsys, folder / 'dog.png',
                                              '../dog.png', 'link.png', folder)
  assert status == 0, err_lines
  assert assert_complete(out) == ['dog']
  notes = [line for line in err_lines if line.startswith('note: ')]
  assert notes == [f"note: '../dog.png' is the same file as {str(folder / 'dog.png')!r}; it is segmented once, as "
                   'the latter.',
                   f"note: 'link.png' is the same file as {str(folder / 'dog.png')!r}; it is segmented once, as "
                   'the latter.']
  assert len([line for line in out_lines if '-> ' in line]) == 1
