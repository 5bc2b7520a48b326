"""segment.py against hostile input: every case ends in a few
lines without a traceback, with the documented exit status, and leaves no
half-written output; killed at any moment, it leaves each image's results
complete or absent, and the same command then finishes the rest."""

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip('torch')
pytest.importorskip('pycocotools')

from conftest import ROOT  # noqa: E402


def photo(path, size=(96, 64), mode='RGB', seed=0):
  array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  Image.fromarray(array).convert(mode).save(path)
  return str(path)


def run(args, timeout=180, **kwargs):
  env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
  return subprocess.run([sys.executable, 'segment.py', *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout, env=env, **kwargs)


def assert_complete(out):
  """Every image folder in `out` holds result.json and every file it names."""
  folders = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith('.')] if out.exists() else []
  for folder in folders:
    record = json.loads((folder / 'result.json').read_text())
    expected = {'result.json', 'overlay.png'} | {i['mask_png'] for i in record['instances']}
    assert {p.name for p in folder.iterdir()} == expected, folder
  return sorted(p.name for p in folders)


class Code:
  """A pickle that would run a command when unpickled without weights_only."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


@pytest.fixture(scope='module')
def inputs(tmp_path_factory, clipseg_dir, dino_dir, sam2_dir, sam3_dir):
  """Weights and files, good and bad, shared by the cases."""
  d = tmp_path_factory.mktemp('inputs')
  (d / 'sam3').symlink_to(sam3_dir)
  photo(d / 'dog.jpg')
  (d / 'a_file').write_text('not a folder')
  (d / 'empty_folder').mkdir()
  (d / 'text.pth').write_text('hello')
  (d / 'empty.pth').write_bytes(b'')
  with open(d / 'code.pth', 'wb') as f:
    pickle.dump({'image_encoder.x': Code(d / 'code_ran')}, f)
  from seg_tiny import tiny_sam
  torch.save(tiny_sam().state_dict(), d / 'tiny_sam.pth')
  data = (d / 'tiny_sam.pth').read_bytes()
  (d / 'truncated.pth').write_bytes(data[:len(data) // 2])
  broken_config = d / 'clipseg_bad_config'
  shutil.copytree(clipseg_dir, broken_config)
  config = json.loads((broken_config / 'config.json').read_text())
  config['text_config']['hidden_size'] = 'wide'
  (broken_config / 'config.json').write_text(json.dumps(config))
  truncated = d / 'clipseg_truncated'
  shutil.copytree(clipseg_dir, truncated)
  weights = truncated / 'model.safetensors'
  weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
  half_json = d / 'sam2_half_json'
  shutil.copytree(sam2_dir, half_json)
  text = (half_json / 'config.json').read_text()
  (half_json / 'config.json').write_text(text[:len(text) // 2])
  return d


def clipseg_sam2(inputs, clipseg_dir, sam2_dir):
  return ['--finder-model', clipseg_dir, '--sam2-model', sam2_dir, '--device', 'cpu', str(inputs / 'dog.jpg')]


# (case, arguments beside --out and the tiny models (INPUTS and DINO are replaced), exit status, a phrase of the message)
CASES = [
    ('empty prompt', ['INPUTS/dog.jpg', '--prompt', ' , ,'], 2, 'the prompt is empty'),
    ('CLIPSeg prompt longer than its text window', ['INPUTS/dog.jpg', '--prompt', ' '.join(['dog'] * 30)], 2, 'CLIPSeg reads at most'),
    ('Grounding DINO prompts too long', ['INPUTS/dog.jpg', '--finder', 'grounding-dino', '--finder-model', 'DINO',
                                         '--prompt', ', '.join(f'cat{i}' for i in range(20))], 2, 'Grounding DINO reads at most'),
    ('--out is a file', ['INPUTS/dog.jpg', '--prompt', 'dog', '--out', 'INPUTS/a_file'], 2, 'is a file; give a folder'),
    ('--out under a file', ['INPUTS/dog.jpg', '--prompt', 'dog', '--out', 'INPUTS/a_file/out'], 2, 'lies under the file'),
    ('--min-score above 1', ['INPUTS/dog.jpg', '--prompt', 'dog', '--min-score', '2'], 2, 'is not in [0, 1]'),
    ('--min-score nan', ['INPUTS/dog.jpg', '--prompt', 'dog', '--min-score', 'nan'], 2, 'is not in [0, 1]'),
    ('--threshold not a number', ['INPUTS/dog.jpg', '--prompt', 'dog', '--threshold', 'half'], 2, 'is not a number'),
    ('--threshold with Grounding DINO', ['INPUTS/dog.jpg', '--prompt', 'dog', '--finder', 'grounding-dino', '--threshold', '0.3'], 2,
     '--threshold applies to CLIPSeg'),
    ('--max-per-prompt 0', ['INPUTS/dog.jpg', '--prompt', 'dog', '--max-per-prompt', '0'], 2, 'give a whole number >= 1'),
    ('--max-per-prompt not a number', ['INPUTS/dog.jpg', '--prompt', 'dog', '--max-per-prompt', 'all'], 2,
     "invalid int value: 'all'"),
    ('--shard 0/4', ['INPUTS/dog.jpg', '--prompt', 'dog', '--shard', '0/4'], 2, "'0/4' is not I/N with 1 <= I <= N"),
    ('--shard 5/4', ['INPUTS/dog.jpg', '--prompt', 'dog', '--shard', '5/4'], 2, "'5/4' is not I/N"),
    ('--shard half', ['INPUTS/dog.jpg', '--prompt', 'dog', '--shard', 'half'], 2, "'half' is not I/N"),
    ('SAM options with SAM 3', ['INPUTS/dog.jpg', '--prompt', 'dog', '--finder', 'sam3', '--finder-model', 'SAM3',
                                '--sam2-model', 'INPUTS/none'], 2, 'outlines the objects itself'),
    ('SAM 3 prompt too long', ['INPUTS/dog.jpg', '--finder', 'sam3', '--finder-model', 'SAM3', '--prompt',
                               ' '.join(['dog'] * 40)], 2, 'SAM 3 reads at most'),
    ('--threshold with SAM 3', ['INPUTS/dog.jpg', '--prompt', 'dog', '--finder', 'sam3', '--threshold', '0.3'], 2,
     '--threshold applies to CLIPSeg'),
    ('unknown finder', ['INPUTS/dog.jpg', '--prompt', 'dog', '--finder', 'owl'], 2, "invalid choice: 'owl'"),
    ('unknown device', ['INPUTS/dog.jpg', '--prompt', 'dog', '--device', 'gpu'], 2, "unknown --device 'gpu'"),
    ('absent device', ['INPUTS/dog.jpg', '--prompt', 'dog', '--device', 'cuda'], 2, "device 'cuda' is not available"),
    ('no images in the folder', ['--prompt', 'dog', 'INPUTS/empty_folder'], 2, 'no images found'),
    ('SAM checkpoint missing', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam-checkpoint', 'INPUTS/none.pth'], 2, 'not found; download'),
    ('SAM checkpoint is text', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam-checkpoint', 'INPUTS/text.pth'], 2,
     'not a readable PyTorch weights file'),
    ('SAM checkpoint is empty', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam-checkpoint', 'INPUTS/empty.pth'], 2,
     'not a readable PyTorch weights file'),
    ('SAM checkpoint holds code', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam-checkpoint', 'INPUTS/code.pth'], 2,
     'not a readable PyTorch weights file'),
    ('SAM checkpoint truncated', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam-checkpoint', 'INPUTS/truncated.pth'], 2,
     'not a readable PyTorch weights file'),
    ('SAM checkpoint of another size', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam-checkpoint', 'INPUTS/tiny_sam.pth'], 2,
     'is not a SAM vit_b checkpoint'),
    ('finder config with a broken field', ['INPUTS/dog.jpg', '--prompt', 'dog', '--finder-model', 'INPUTS/clipseg_bad_config'], 2,
     'cannot be loaded'),
    ('finder weights truncated', ['INPUTS/dog.jpg', '--prompt', 'dog', '--finder-model', 'INPUTS/clipseg_truncated'], 2,
     'cannot be loaded'),
    ('SAM 2 config cut in half', ['INPUTS/dog.jpg', '--prompt', 'dog', '--sam2-model', 'INPUTS/sam2_half_json'], 2, 'cannot be loaded'),
]


def case_args(tmp_path, inputs, clipseg_dir, dino_dir, sam2_dir, case):
  """The full argument list of one case of CASES, and its --out."""
  name, args, _, _ = case
  names = {'INPUTS': str(inputs), 'DINO': dino_dir, 'SAM3': str(inputs / 'sam3')}
  args = [next((a.replace(k, v) for k, v in names.items() if a.startswith(k)), a) for a in args]
  out = tmp_path / name.replace(' ', '_').replace('/', '_') / 'out'
  base = ['--finder-model', clipseg_dir, '--out', str(out)]
  if '--sam-checkpoint' not in args and 'sam3' not in args:
    base += ['--sam2-model', sam2_dir]
  return base + args, out  # Later options win over the defaults in `base`.


def problems_of(case, status, stderr, out, inputs):
  """What went wrong in a case's outcome: a list of phrases, empty if nothing."""
  name, _, expected_status, phrase = case
  lines = stderr.strip().splitlines()
  problems = [
      status != expected_status and f'exit status {status}, not {expected_status}',
      'Traceback' in stderr and 'a traceback',
      'weights_only' in stderr and "torch's weights_only advice",
      not (1 <= len(lines) <= 3 and phrase in lines[-1]) and f'not {phrase!r} in a few lines',
      out.exists() and 'wrote to --out',
      (inputs / 'code_ran').exists() and 'ran the code in a pickle',
  ]
  return [f'{name}: {p}; stderr: {lines[-3:]}' for p in problems if p]


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, inputs, clipseg_dir, dino_dir, sam2_dir, case, capsys):
  """In-process through segment.main, the function the command runs."""
  import segment
  args, out = case_args(tmp_path, inputs, clipseg_dir, dino_dir, sam2_dir, case)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('default')  # What a user of the command sees.
    try:
      status = segment.main(args)
    except SystemExit as e:  # argparse's usage errors.
      status = e.code
  hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # Python's own defaults.
  shown = [f'{w.category.__name__}: {w.message}' for w in caught if not issubclass(w.category, hidden)]
  assert not problems_of(case, status, capsys.readouterr().err + '\n'.join(shown), out, inputs)


def test_bad_input_is_one_line_from_the_command(tmp_path, inputs, clipseg_dir, dino_dir, sam2_dir):
  """A usage error and a weights error, as a separate process sees them."""
  for case in [c for c in CASES if c[0] in ('unknown finder', 'SAM checkpoint holds code')]:
    args, out = case_args(tmp_path, inputs, clipseg_dir, dino_dir, sam2_dir, case)
    result = run(args)
    assert not problems_of(case, result.returncode, result.stderr, out, inputs)


def main(args, capsys):
  """segment.main in-process: (exit status, stdout, stderr)."""
  import segment
  status = segment.main(args)
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def test_images_the_models_cannot_take_fail_alone(tmp_path, clipseg_dir, dino_dir, sam2_dir, capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  photo(folder / 'a_good.png')
  for name, size in [('one_pixel.png', (1, 1)), ('thin.png', (100, 4)), ('tall.png', (4, 100)),
                     ('line.png', (300, 1))]:
    photo(folder / name, size=size)
  (folder / 'text.jpg').write_text('not an image')
  (folder / 'empty.png').write_bytes(b'')
  data = open(photo(tmp_path / 'whole.png', size=(200, 200)), 'rb').read()
  (folder / 'truncated.png').write_bytes(data[:len(data) // 3])
  Image.fromarray(np.full((40, 50), 40000, np.uint16)).save(folder / 'sixteen_bit.png')
  photo(folder / 'z_good.jpg', seed=1)
  for k, finder in enumerate([['--finder-model', clipseg_dir, '--threshold', '0', '--min-score', '0'],
                              ['--finder', 'grounding-dino', '--finder-model', dino_dir, '--min-score', '0']]):
    out = tmp_path / f'out{k}'
    status, _, stderr = main(['--prompt', 'dog', '--out', str(out), '--sam2-model', sam2_dir, '--device', 'cpu',
                              *finder, str(folder)], capsys)
    assert status == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert any("text.jpg': not a readable image" in e for e in errors)
    assert any('truncated.png' in e for e in errors) and any('empty.png' in e for e in errors)
    done = assert_complete(out)
    assert {'a_good', 'z_good', 'sixteen_bit'} <= set(done)
    assert len(done) + len(errors) == 10  # Every image is either done or named in one line.


def test_one_input_never_deletes_anothers_results(tmp_path, clipseg_dir, sam2_dir, capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  for name in ('dog_mask_7.jpg', 'dog.jpg', 'dog_overlay.jpg', 'Dog.png', 'dog_2.jpg'):
    photo(folder / name)
  out = tmp_path / 'out'
  args = ['--prompt', 'dog, cap', '--out', str(out), '--finder-model', clipseg_dir, '--sam2-model', sam2_dir,
          '--threshold', '0', '--min-score', '0', '--device', 'cpu']
  assert main([*args, str(folder)], capsys)[0] == 0
  first = assert_complete(out)
  assert len(first) == 5
  def sources():
    return {n: json.loads((out / n / 'result.json').read_text())['source'] for n in assert_complete(out)}
  before = sources()
  assert sorted(before.values()) == sorted(str(p) for p in folder.iterdir())
  assert len({n.lower() for n in before}) == 5  # Distinct also where letter case is not (macOS, Windows).
  # Another folder with a dog.jpg: its results go beside, never over, the first dog's.
  other = tmp_path / 'other'
  other.mkdir()
  photo(other / 'dog.jpg', seed=3)
  assert main([*args, str(other)], capsys)[0] == 0
  after = sources()
  assert len(after) == 6 and {n: after[n] for n in before} == before


def test_a_second_run_on_the_same_out_is_refused(tmp_path, clipseg_dir, sam2_dir, capsys):
  import fcntl
  out = tmp_path / 'out'
  out.mkdir()
  with open(out / '.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    status, _, stderr = main(['--prompt', 'dog', '--out', str(out), '--finder-model', clipseg_dir, '--sam2-model',
                              sam2_dir, photo(tmp_path / 'dog.jpg')], capsys)
  assert status == 2 and 'another segment.py is writing to' in stderr


def test_an_interrupted_replacement_is_put_back(tmp_path):
  from seg_bridge.outputs import OutputFolder
  out = tmp_path / 'out'
  (out / '.partial' / 'old' / 'dog').mkdir(parents=True)
  (out / '.partial' / 'old' / 'dog' / 'result.json').write_text('{}')
  (out / '.partial' / 'new' / 'cat').mkdir(parents=True)  # Unfinished: dropped.
  OutputFolder(str(out)).close()
  assert sorted(p.name for p in out.iterdir()) == ['.lock', 'dog']
  assert (out / 'dog' / 'result.json').read_text() == '{}'


def start(args):
  env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
  return subprocess.Popen([sys.executable, 'segment.py', *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def wait_for_folders(out, count, process, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if out.exists() and len([p for p in out.iterdir() if p.is_dir() and not p.name.startswith('.')]) >= count:
      return
    time.sleep(0.005)


@pytest.mark.slow  # About a minute: four runs killed, then one to finish.
def test_killed_at_random_moments_each_image_is_complete_or_absent(tmp_path, clipseg_dir, sam2_dir):
  folder = tmp_path / 'in'
  folder.mkdir()
  total = 48  # Each killed run finishes about four, so even a fast machine leaves most for the last run.
  for k in range(total):
    photo(folder / f'img{k:02d}.png', size=(160, 120), seed=k)
  out = tmp_path / 'out'
  args = ['--prompt', 'dog, cap', '--out', str(out), '--finder-model', clipseg_dir, '--sam2-model', sam2_dir,
          '--threshold', '0', '--min-score', '0', '--device', 'cpu', str(folder)]
  rng = random.Random(0)
  done = []
  for _ in range(4):  # Each run skips what the killed ones finished, and is killed in turn.
    process = start(args)
    wait_for_folders(out, len(done) + rng.randrange(4), process)
    time.sleep(rng.uniform(0, 0.2))
    process.kill()
    process.communicate()
    done = assert_complete(out)  # Before any rerun: nothing partial.
  assert 0 < len(done) < total
  result = run(args)
  assert result.returncode == 0, result.stderr
  assert f'{len(done)} of {total} images were done by an earlier run' in result.stdout
  assert len(assert_complete(out)) == total and not (out / '.partial').exists()


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_in_one_line_keeping_finished_images(tmp_path, clipseg_dir, sam2_dir,
                                                                     signum, status):
  folder = tmp_path / 'in'
  folder.mkdir()
  for k in range(40):
    photo(folder / f'img{k:02d}.png', size=(160, 120), seed=k)
  out = tmp_path / 'out'
  process = start(['--prompt', 'dog', '--out', str(out), '--finder-model', clipseg_dir, '--sam2-model', sam2_dir,
                   '--threshold', '0', '--min-score', '0', '--device', 'cpu', str(folder)])
  wait_for_folders(out, 2, process)
  process.send_signal(signum)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == status, stderr
  assert 'Traceback' not in stderr
  last = stderr.strip().splitlines()[-1]
  assert last.startswith('interrupted: ') and 'run the same command again' in last
  done = assert_complete(out)
  assert 2 <= len(done) < 40 and not (out / '.partial').exists()


@pytest.mark.parametrize('command', ['segment', 'segment_video'])
@pytest.mark.parametrize('record', ['errors.jsonl', 'run.json'])
def test_a_full_disk_at_the_run_record_is_one_line_and_keeps_what_was_written(tmp_path, clipseg_dir, sam2_dir,
                                                                               sam2_video_dir, monkeypatch, capsys,
                                                                               command, record):
  import errno
  import importlib

  from seg_bridge import engines
  from test_seg_video import shapes_video, write_video
  from vit_jax import files
  module = importlib.import_module(command)

  def full_disk(path, data):
    with files.atomic_file(path) as f:
      f.write(data)
      if path.endswith(record):
        raise OSError(errno.ENOSPC, 'No space left on device')  # As a write does: naming no file.
  monkeypatch.setattr(engines, 'atomic_write', full_disk)
  good = (photo(tmp_path / 'good.png') if command == 'segment' else
          write_video(tmp_path / 'good.mp4', shapes_video(count=2)[0]))
  (tmp_path / 'broken.png').write_text('not an image')  # A failure: errors.jsonl is written.
  out = tmp_path / 'out'
  args = ['--prompt', 'dog', '--finder-model', clipseg_dir, '--sam2-model', sam2_dir, '--threshold', '0',
          '--min-score', '0', '--device', 'cpu', '--out', str(out), good, str(tmp_path / 'broken.png')]
  if command == 'segment_video':
    args += ['--tracker-model', sam2_video_dir]
  assert module.main(args) == 1
  last = capsys.readouterr().err.strip().splitlines()[-1]
  unit = 'video' if command == 'segment_video' else 'image'
  assert last == (f"error: cannot write '{out / record}' (No space left on device); the 1 {unit} written is kept. "
                  'Free space, then run the same command again to finish.')
  assert (out / 'good' / 'result.json').exists() and not list(out.glob('.*.tmp'))
