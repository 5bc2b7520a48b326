"""segment.py end to end on tiny models: output files, bad inputs, missing weights."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip('torch')
pytest.importorskip('segment_anything')
pytest.importorskip('pycocotools')

import segment  # noqa: E402
from conftest import ROOT  # noqa: E402
from seg_bridge.maskers.sam import SamMasker  # noqa: E402
from seg_tiny import save_tiny_sam2, tiny_sam  # noqa: E402


@pytest.fixture
def tiny_sam_checkpoints(monkeypatch):
  """SAM checkpoints load as the tiny SAM (the real loader is tested in test_seg_sam)."""
  monkeypatch.setattr(SamMasker, 'load', classmethod(
      lambda cls, path, device, model_type: cls(tiny_sam(), 'cpu', checkpoint=path or 'sam_vit_b_01ec64.pth')))


def photo(path, size=(96, 64), mode='RGB'):
  array = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  Image.fromarray(array).convert(mode).save(path)
  return str(path)


def everything(clipseg_dir, out):
  """Options under which random tiny models still find something: the whole image."""
  return ['--finder-model', clipseg_dir, '--out', str(out), '--threshold', '0', '--min-score', '0',
          '--device', 'cpu']


def test_writes_overlay_masks_and_json_with_rle(tmp_path, clipseg_dir, tiny_sam_checkpoints):
  from pycocotools import mask as mask_utils
  image = photo(tmp_path / 'dog.jpg')
  assert segment.main(['--prompt', 'dog, cap', image, *everything(clipseg_dir, tmp_path / 'out')]) == 0
  record = json.loads((tmp_path / 'out' / 'dog' / 'result.json').read_text())
  assert record['prompts'] == ['dog', 'cap'] and record['size'] == [64, 96]
  assert record['source'] == image and record['settings']['finder'] == 'clipseg'
  assert record['instances'], 'the whole-image region should give at least one mask'
  for k, inst in enumerate(record['instances']):
    assert inst['label'] in ('dog', 'cap') and len(inst['box']) == 4
    mask = np.asarray(Image.open(tmp_path / 'out' / 'dog' / inst['mask_png'])) > 0
    rle = dict(inst['rle'], counts=inst['rle']['counts'].encode())
    np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)
  with Image.open(tmp_path / 'out' / 'dog' / 'overlay.png') as overlay:
    assert overlay.size == (96, 64) and overlay.mode == 'RGB'
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['.lock', 'dog', 'run.json']
  run = json.loads((tmp_path / 'out' / 'run.json').read_text())
  assert (run['written'], run['skipped'], run['failed'], run['finished'], run['engine']) == (1, 0, 0, True, 'local')
  assert run['settings'] == record['settings'] | {'prompts': ['dog', 'cap']}


def test_grounding_dino_boxes_become_masks(tmp_path, dino_dir, tiny_sam_checkpoints):
  image = photo(tmp_path / 'cat.png')
  out = tmp_path / 'out'
  assert segment.main(['--finder', 'grounding-dino', '--finder-model', dino_dir, '--prompt', 'cat, a skateboard',
                       '--min-score', '0', '--out', str(out), '--device', 'cpu', image]) == 0
  record = json.loads((out / 'cat' / 'result.json').read_text())
  assert record['instances'] and {i['label'] for i in record['instances']} <= {'cat', 'a skateboard'}
  assert all((out / 'cat' / i['mask_png']).is_file() for i in record['instances'])


def test_sam2_instead_of_sam(tmp_path, clipseg_dir):
  sam2_dir = save_tiny_sam2(tmp_path / 'sam2')
  out = tmp_path / 'out'
  assert segment.main(['--prompt', 'dog', photo(tmp_path / 'dog.png'), '--sam2-model', sam2_dir,
                       '--sam-checkpoint', str(tmp_path / 'unused.pth'), *everything(clipseg_dir, out)]) == 0
  record = json.loads((out / 'dog' / 'result.json').read_text())
  assert [i['label'] for i in record['instances']] == ['dog']


def test_prompt_too_long_for_grounding_dino_is_one_line(tmp_path, dino_dir, tiny_sam_checkpoints, capsys):
  status = segment.main(['--finder', 'grounding-dino', '--finder-model', dino_dir, '--prompt', ', '.join(f'cat{i}' for i in range(20)),
                         '--out', str(tmp_path / 'out'), photo(tmp_path / 'a.png')])
  assert status == 2 and 'Grounding DINO reads at most 32' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_threshold_is_for_heatmaps_only(tmp_path, capsys):
  status = segment.main(['--finder', 'grounding-dino', '--threshold', '0.4', '--prompt', 'cat', photo(tmp_path / 'a.png')])
  assert status == 2 and '--threshold applies to CLIPSeg' in capsys.readouterr().err


def test_bad_images_fail_alone_and_the_rest_is_processed(tmp_path, clipseg_dir, tiny_sam_checkpoints, capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  photo(folder / 'gray.png', mode='L')
  photo(folder / 'rgba.png', mode='RGBA')
  (folder / 'broken.jpg').write_bytes(b'\xff\xd8\xff not a jpeg')
  status = segment.main(['--prompt', 'dog', str(folder), *everything(clipseg_dir, tmp_path / 'out')])
  assert status == 1
  assert "broken.jpg': not a readable image" in capsys.readouterr().err
  names = sorted(p.name for p in (tmp_path / 'out').iterdir())
  assert 'gray' in names and 'rgba' in names and not any(n.startswith('broken') for n in names)
  failures = [json.loads(line) for line in (tmp_path / 'out' / 'errors.jsonl').read_text().splitlines()]
  assert [(f['input'], f['name']) for f in failures] == [(str(folder / 'broken.jpg'), 'broken')]
  assert failures[0]['error'].endswith('not a readable image (cannot identify image file ' +
                                       repr(str(folder / 'broken.jpg')) + ').')
  run = json.loads((tmp_path / 'out' / 'run.json').read_text())
  assert (run['written'], run['failed'], run['inputs']) == (len(names) - 3, 1, len(names) - 2)


def test_images_by_url(http_folder, clipseg_dir, tiny_sam_checkpoints):
  folder, url = http_folder
  photo(folder / 'dog.jpg')
  status = segment.main(['--prompt', 'dog', f'{url}/dog.jpg', f'{url}/gone.jpg', *everything(clipseg_dir, folder / 'out')])
  assert status == 1  # gone.jpg failed; dog.jpg was still segmented.
  assert (folder / 'out' / 'dog' / 'result.json').is_file() and not (folder / 'out' / 'gone').exists()


def test_output_names_are_unique_stems(tmp_path):
  from seg_bridge.outputs import OutputFolder
  out = OutputFolder(str(tmp_path / 'out'))
  paths = ['a/dog.jpg', 'b/dog.png', 'https://example.com/x/cat.jpg?size=2', 'https://example.com/', 'c/dog.tif',
           'd/Dog.jpg', 'e/.hidden.png', 'f/a b?.png']
  names = out.assign_names([segment.source_of(p) for p in paths], [segment.stem_of(p) for p in paths])
  assert names == ['dog', 'dog_2', 'cat', 'image', 'dog_3', 'Dog_4', 'hidden', 'a_b_']
  paths = ['dog_2.png', 'a/dog.jpg', 'b/dog.jpg']
  assert out.assign_names(paths, [segment.stem_of(p) for p in paths]) == ['dog_2', 'dog', 'dog_3']
  (tmp_path / 'out' / 'dog').mkdir()  # Not written by segment.py: never reused.
  assert out.assign_names(['a/dog.jpg'], ['dog']) == ['dog_2']
  out.close()


@pytest.mark.parametrize('prompt', ['', '   ', ', ,'])
def test_empty_prompt_is_one_line_and_writes_nothing(tmp_path, prompt, capsys):
  status = segment.main(['--prompt', prompt, photo(tmp_path / 'a.png'), '--out', str(tmp_path / 'out')])
  assert status == 2 and capsys.readouterr().err.startswith('error: the prompt is empty')
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('model', ['no-such-org/no-such-clipseg', 'FOLDER'])
def test_missing_weights_are_one_sentence_from_the_command_line(tmp_path, model):
  """With or without network, an unknown name or folder ends in one line, in seconds, not minutes of retries."""
  model = str(tmp_path / 'no-clipseg') if model == 'FOLDER' else model
  result = subprocess.run(
      [sys.executable, 'segment.py', '--prompt', 'dog', photo(tmp_path / 'a.png'), '--finder-model', model,
       '--out', str(tmp_path / 'out')],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={'PATH': '/usr/bin:/bin', 'HF_HOME': str(tmp_path / 'hf')})
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: CLIPSeg processor ') and repr(model) in last and 'save_pretrained' in last
  assert 'Traceback' not in result.stderr and not (tmp_path / 'out').exists()


def test_an_out_folder_without_write_permission_is_refused_before_anything(tmp_path, monkeypatch, capsys):
  """(As root every folder is writable, so the permission answer is simulated.)"""
  monkeypatch.setattr(segment.os, 'access', lambda path, mode: False)
  status = segment.main(['--prompt', 'dog', photo(tmp_path / 'a.png'), '--out', str(tmp_path / 'out')])
  assert status == 2 and capsys.readouterr().err.startswith(f"error: --out '{tmp_path / 'out'}': no permission to write")
  assert not (tmp_path / 'out').exists()


def test_shards_split_a_folder_with_no_overlap_and_no_loss(tmp_path, clipseg_dir, tiny_sam_checkpoints, capsys):
  paths = [f'photos/img{k}.jpg' for k in range(200)]
  shards = [[p for p in paths if segment.in_shard(p, (i, 4))] for i in range(1, 5)]
  assert sorted(sum(shards, [])) == sorted(paths) and all(25 <= len(s) <= 75 for s in shards)
  folder = tmp_path / 'in'
  folder.mkdir()
  for k in range(7):
    photo(folder / f'img{k}.png')
  photo(folder / 'IMG1.jpg')  # Its folder name depends on the others': the shards must agree.
  out = tmp_path / 'out'
  counts = []
  for i in (3, 1, 2):  # Into one --out, in any order.
    assert segment.main(['--prompt', 'dog', str(folder), '--shard', f'{i}/3', *everything(clipseg_dir, out)]) == 0
    counts.append(int(capsys.readouterr().out.split(': ')[1].split(' of')[0]))
  def names(out):
    return {json.loads((out / n / 'result.json').read_text())['source']: n
            for n in sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith('.'))}
  assert sum(counts) == 8 and sorted(names(out)) == sorted(str(p) for p in folder.iterdir())
  assert segment.main(['--prompt', 'dog', str(folder), *everything(clipseg_dir, tmp_path / 'all')]) == 0
  assert names(out) == names(tmp_path / 'all')  # Each image's folder named as one run over all names it.


def test_shards_write_into_one_out_together_but_a_full_run_waits(tmp_path):
  from seg_bridge.outputs import OutputError, OutputFolder
  root = str(tmp_path / 'out')
  first, second = OutputFolder(root, '1-of-2'), OutputFolder(root, '2-of-2')
  with pytest.raises(OutputError, match='writing shard 1-of-2'):
    OutputFolder(root, '1-of-2')
  with pytest.raises(OutputError, match='another segment.py is writing'):
    OutputFolder(root)
  first.close()
  second.close()
  OutputFolder(root).close()
