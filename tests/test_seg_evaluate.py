"""python -m seg_bridge.evaluate on synthetic labelled photos whose answers are
known (tests/seg_shapes.py), with a segmenter whose output is known: the
numbers, COCO and folder ground truth alike, calibration against a brute-force
loop, segment.py --settings, resuming, past runs, and bad input."""

import json
import os

import numpy as np
import pytest

pytest.importorskip('pycocotools')

import segment  # noqa: E402
import segment_video  # noqa: E402
import seg_bridge.build  # noqa: E402
from seg_bridge import evaluate  # noqa: E402
from seg_bridge.evaluation.metrics import Pair, evaluate_pairs  # noqa: E402
from seg_bridge.evaluation.truth import read_truth  # noqa: E402
from seg_bridge.outputs import coco_rle  # noqa: E402
from seg_bridge.outputs import OutputFolder  # noqa: E402
from seg_shapes import ShapeSegmenter, photo, write_coco, write_folder, write_photos  # noqa: E402


@pytest.fixture
def shapes(monkeypatch):
  """seg_bridge.build.build makes ShapeSegmenters (with the options' min-score); returns those made."""
  made = []

  def build(options):
    segmenter = ShapeSegmenter(0.35 if options.min_score is None else options.min_score)
    made.append(segmenter)
    return segmenter, seg_bridge.build.settings_of(options)
  monkeypatch.setattr(seg_bridge.build, 'build', build)
  return made


FINDER = ['--finder', 'grounding-dino']  # A finder name whose only threshold is --min-score.


def metrics_of(out):
  with open(os.path.join(out, 'metrics.json')) as f:
    return json.load(f)


def test_right_answers_score_one_and_a_false_positive_costs_what_it_should(tmp_path, shapes):
  truth = write_coco(tmp_path / 'labels')
  assert evaluate.main([truth, *FINDER, '--out', str(tmp_path / 'eval')]) == 0
  report = metrics_of(tmp_path / 'eval')
  (config,) = report['configurations']
  assert report['prompts'] == ['disc', 'square'] and report['images'] == 6 and config['images'] == 6
  for name in ('*', 'square', 'disc'):  # The orange patch (0.3) is under the default min-score 0.35.
    m = config['metrics'][name]
    assert (m['gIoU'], m['cIoU'], m['MCC'], m['precision'], m['recall']) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert m['AP'] == pytest.approx(1.0) and m['cgF1'] == pytest.approx(100.0)
  assert config['seconds_per_image'] > 0
  for name in ('metrics.md', 'plots/1-grounding-dino_SAM_vit_b_pr.png', 'plots/comparison.png'):
    assert (tmp_path / 'eval' / name).is_file(), name

  assert evaluate.main([truth, *FINDER, '--min-score', '0.2', '--out', str(tmp_path / 'low')]) == 0
  square = metrics_of(tmp_path / 'low')['configurations'][0]['metrics']['square']
  # Photos 0, 1, 3, 4 have a square: it (100 px) and the patch (36 px) are predicted, IoU 100 / 136. Photos 2
  # and 5 have none: the patch alone, IoU 0, a false positive.
  assert square['gIoU'] == pytest.approx(4 * (100 / 136) / 6)
  assert square['cIoU'] == pytest.approx(400 / (4 * 136 + 2 * 36))
  assert square['presence'] == {'TP': 4, 'FP': 2, 'FN': 0, 'TN': 0} and square['MCC'] == 0.0
  # pmF1 counts the positive photos: 4 TPs, 4 FPs (the patches there), 0 FNs, at every IoU threshold.
  assert square['pmF1'] == pytest.approx(2 / 3) and square['cgF1'] == 0.0
  worst = sorted(os.listdir(tmp_path / 'low' / 'worst' / '1-grounding-dino_SAM_vit_b' / 'square'))
  assert len(worst) == 5 and worst[0] == '01_iou0.00_p2.png' and worst[2].startswith('03_iou0.74_')
  from PIL import Image
  with Image.open(tmp_path / 'low' / 'worst' / '1-grounding-dino_SAM_vit_b' / 'square' / worst[0]) as picture:
    assert picture.size == (2 * 80 + 8, 64)  # The prediction beside the truth.


def test_folder_ground_truth_reads_and_scores_as_the_coco_file_does(tmp_path, shapes):
  coco = read_truth(write_coco(tmp_path / 'coco'))
  folder = read_truth(write_folder(tmp_path / 'folder'))
  assert coco.prompts == folder.prompts == ['disc', 'square']
  from pycocotools import mask as mask_utils
  for a, b in zip(coco.images, folder.images):
    assert a.size == b.size
    for label in coco.prompts:
      assert [mask_utils.decode(m).sum() for m in a.masks.get(label, [])] == [
          mask_utils.decode(m).sum() for m in b.masks.get(label, [])]
      for m, n in zip(a.masks.get(label, []), b.masks.get(label, [])):
        assert mask_utils.iou([m], [n], [0])[0, 0] == 1.0
  for name in ('coco', 'folder'):
    truth = str(tmp_path / 'coco' / 'instances.json') if name == 'coco' else str(tmp_path / 'folder')
    assert evaluate.main([truth, *FINDER, '--min-score', '0.2', '--out', str(tmp_path / f'eval-{name}')]) == 0
  scores = [metrics_of(tmp_path / f'eval-{name}')['configurations'][0]['metrics'] for name in ('coco', 'folder')]
  assert scores[0] == scores[1] and scores[0]['square']['gIoU'] == pytest.approx(4 * (100 / 136) / 6)


def brute_force_choice(truth_path, metric, min_scores):
  """The calibration done the slow way: the segmenter built at each grid point, the metric computed afresh."""
  truth = read_truth(truth_path)
  table = []
  for m in min_scores:
    segmenter = ShapeSegmenter(m)
    pairs = []
    for image in truth.images:
      result = segmenter.segment(photo(int(image.name[1:-4]))[0], truth.prompts)
      for prompt in truth.prompts:
        found = [i for i in result.instances if i.label == prompt]
        pairs.append(Pair(image.name, prompt, image.size, image.masks.get(prompt, []),
                          [coco_rle(i.mask) for i in found], [i.score for i in found]))
    table.append((m, evaluate_pairs(pairs, truth.prompts)))
  best = {}
  for name in ['*', *truth.prompts]:
    values = [(metrics[name][metric], m) for m, metrics in table]
    top = max(v for v, _ in values)
    best[name] = next(m for v, m in values if v == top)  # Ties: the earlier (lower) min-score.
  return best


@pytest.mark.parametrize('metric', ['cgF1', 'gIoU', 'AP'])
def test_calibration_picks_what_a_brute_force_loop_picks_and_segment_py_uses_it(tmp_path, shapes, metric):
  truth = write_coco(tmp_path / 'labels')
  grid = '0.1,0.25,0.3,0.5,0.7,0.95'
  assert evaluate.main([truth, *FINDER, '--calibrate', metric, '--min-scores', grid,
                        '--out', str(tmp_path / 'eval')]) == 0
  assert len(shapes) == 1 and shapes[0].calls == 6  # Each photo segmented once for the whole grid.
  settings = json.loads((tmp_path / 'eval' / 'settings.json').read_text())
  min_scores = sorted({float(v) for v in grid.split(',')} | {0.35})  # The finder's default joins the grid.
  assert settings['min_score'] == brute_force_choice(truth, metric, min_scores)
  assert settings['finder'] == 'grounding-dino' and settings['metric'] == metric
  calibrated = metrics_of(tmp_path / 'eval')['configurations'][0]
  assert calibrated['calibration']['best']['square']['min_score'] == settings['min_score']['square']
  assert [p['min_score'] for p in calibrated['calibration']['grid']] == min_scores
  assert (tmp_path / 'eval' / 'plots' / '1-grounding-dino_SAM_vit_b_sweep.png').is_file()

  shapes.clear()
  photos = write_photos(tmp_path / 'new', 2)
  assert segment.main(['--prompt', 'square, disc, cap', *FINDER, '--settings', str(tmp_path / 'eval' / 'settings.json'),
                       '--out', str(tmp_path / 'seg'), *photos]) == 0
  assert shapes[0].min_score == settings['min_score']  # Per prompt; 'cap' takes '*'.
  record = json.loads((tmp_path / 'seg' / 'p0' / 'result.json').read_text())
  assert record['settings']['min_score'] == settings['min_score']
  patch = ['square'] if settings['min_score']['square'] <= 0.3 else []  # AP does not mind it: low scores rank last.
  assert [i['label'] for i in record['instances']] == ['square', 'disc', *patch]
  assert (metric == 'AP') == bool(patch)


def test_an_interrupted_evaluation_resumes_to_the_same_metrics(tmp_path, shapes, monkeypatch):
  truth = write_coco(tmp_path / 'labels')
  args = [truth, *FINDER, '--calibrate', 'cgF1', '--min-scores', '0.2,0.5']
  assert evaluate.main([*args, '--out', str(tmp_path / 'whole')]) == 0

  real = ShapeSegmenter.segment

  def stopping(self, image, prompts):
    if self.calls == 3:
      raise KeyboardInterrupt
    return real(self, image, prompts)
  monkeypatch.setattr(ShapeSegmenter, 'segment', stopping)
  assert evaluate.main([*args, '--out', str(tmp_path / 'eval')]) == 130
  assert not (tmp_path / 'eval' / 'metrics.json').exists()
  monkeypatch.setattr(ShapeSegmenter, 'segment', real)
  assert evaluate.main([*args, '--out', str(tmp_path / 'eval')]) == 0
  assert shapes[-1].calls == 3  # The three photos not yet cached.

  def without_seconds(report):
    for config in report['configurations']:
      config.pop('seconds_per_image')
    return {**report, 'command': None}
  assert without_seconds(metrics_of(tmp_path / 'eval')) == without_seconds(metrics_of(tmp_path / 'whole'))


def test_a_past_run_and_its_export_score_as_the_segmenter_does(tmp_path, shapes):
  from seg_bridge import export
  truth = write_coco(tmp_path / 'labels')
  out = OutputFolder(str(tmp_path / 'run'))
  segmenter = ShapeSegmenter(0.35)
  for k in range(6):
    path = str(tmp_path / 'labels' / f'p{k}.png')
    out.write(f'p{k}', os.path.realpath(path), {}, photo(k)[0], segmenter.segment(photo(k)[0], ['square', 'disc']))
  out.close()
  export.export(str(tmp_path / 'run'), str(tmp_path / 'data'))
  assert evaluate.main([truth, *FINDER, '--out', str(tmp_path / 'a')]) == 0
  assert evaluate.main([truth, '--predictions', str(tmp_path / 'run'), '--predictions',
                        str(tmp_path / 'data' / 'instances.json'), '--out', str(tmp_path / 'b')]) == 0
  direct = metrics_of(tmp_path / 'a')['configurations'][0]['metrics']
  for config in metrics_of(tmp_path / 'b')['configurations']:
    assert config['metrics'] == direct and config['seconds_per_image'] is None


def edit_coco(path, change):
  data = json.loads(open(path).read())
  change(data)
  with open(path, 'w') as f:
    json.dump(data, f)


def one_error_line(capsys):
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.startswith('error:')]
  assert len(lines) == 1 and 'Traceback' not in err, err
  return lines[0]


@pytest.mark.parametrize('damage,phrase', [
    (lambda p: open(p, 'w').write('{"images": ['), 'cannot be read as JSON'),
    (lambda p: open(p, 'w').write('[1, 2]'), 'is not COCO instances'),
    (lambda p: open(p, 'w').write('{"images": [], "annotations": [], "categories": []}'), 'names no categories'),
    (lambda p: edit_coco(p, lambda d: d['images'][0].pop('height')), "lacks 'height'"),
    (lambda p: edit_coco(p, lambda d: [i.update(file_name='gone.png') for i in d['images']]), 'none of its images'),
])
def test_a_broken_annotation_file_is_one_line_exit_2_and_writes_nothing(tmp_path, shapes, capsys, damage, phrase):
  truth = write_coco(tmp_path / 'labels')
  damage(truth)
  assert evaluate.main([truth, *FINDER, '--out', str(tmp_path / 'eval')]) == 2
  assert phrase in one_error_line(capsys)
  assert not (tmp_path / 'eval').exists() and not shapes


def test_bad_images_and_annotations_skip_that_image_and_are_counted(tmp_path, shapes, capsys):
  truth = write_coco(tmp_path / 'labels')

  def damage(data):
    data['images'].append({'id': 99, 'file_name': 'missing.png', 'height': 64, 'width': 80})
    data['annotations'][0]['segmentation'] = {'size': [32, 40], 'counts': 'PPYo0'}  # p0's square: another size.
    data['categories'].append({'id': 7, 'name': 'triangle'})  # No instance anywhere.
  edit_coco(truth, damage)
  (tmp_path / 'labels' / 'p1.png').write_bytes(b'not a picture')
  assert evaluate.main([truth, *FINDER, '--out', str(tmp_path / 'eval')]) == 1
  err = capsys.readouterr().err
  assert "'missing.png': the image" in err and 'is missing' in err
  assert "'p0.png': annotation 1: its mask is 40x32 pixels, the image 80x64" in err
  assert "'triangle' has no instance in any image" in err
  assert "p1.png" in err and 'Traceback' not in err
  report = metrics_of(tmp_path / 'eval')
  assert report['images'] == 5 and report['configurations'][0]['images'] == 4  # p1 could not be segmented.
  assert len(report['skipped']) == 3 and report['prompts'] == ['disc', 'square', 'triangle']
  assert report['configurations'][0]['metrics']['triangle']['AP'] is None


def test_folder_masks_of_another_size_skip_the_image(tmp_path, shapes, capsys):
  from PIL import Image
  root = write_folder(tmp_path / 'labels')
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / 'labels' / 'p3' / 'square.png')
  assert evaluate.main([root, *FINDER, '--out', str(tmp_path / 'eval')]) == 1
  assert "'p3.png': the mask 'square.png' is 10x10 pixels, the image 80x64" in capsys.readouterr().err
  assert metrics_of(tmp_path / 'eval')['images'] == 5


@pytest.mark.parametrize('content,phrase', [
    ('{"kind": "seg_bridge calibration", "finder": "grounding-dino", "min_score": {"*": 2}}', 'is damaged'),
    ('{"kind": "seg_bridge calibration", "finder": "sam3", "min_score": {"*": 0.5}}', 'calibrated for --finder sam3'),
    ('{"min_score": 0.5}', 'is not a settings file'),
    ('not json', 'cannot be read'),
])
def test_a_bad_settings_file_is_one_line_exit_2(tmp_path, shapes, capsys, content, phrase):
  (tmp_path / 'settings.json').write_text(content)
  photos = write_photos(tmp_path / 'photos', 1)
  settings = ['--settings', str(tmp_path / 'settings.json')]
  assert segment.main(['--prompt', 'square', *FINDER, *settings, '--out', str(tmp_path / 'seg'), *photos]) == 2
  assert phrase in one_error_line(capsys)
  assert segment_video.main(['--prompt', 'square', *FINDER, *settings, '--out', str(tmp_path / 'seg'), 'clip.mp4']) == 2
  assert phrase in one_error_line(capsys)
  truth = write_coco(tmp_path / 'labels')
  assert evaluate.main([truth, *FINDER, *settings, '--out', str(tmp_path / 'eval')]) == 2
  assert phrase in one_error_line(capsys)
  assert not (tmp_path / 'seg').exists() and not (tmp_path / 'eval').exists() and not shapes


def test_settings_and_thresholds_together_and_calibrating_settings_are_refused(tmp_path, shapes, capsys):
  truth = write_coco(tmp_path / 'labels')
  assert evaluate.main([truth, *FINDER, '--calibrate', 'cgF1', '--out', str(tmp_path / 'eval')]) == 0
  settings = ['--settings', str(tmp_path / 'eval' / 'settings.json')]
  capsys.readouterr()
  assert evaluate.main([truth, *FINDER, *settings, '--min-score', '0.3', '--out', str(tmp_path / 'a')]) == 2
  assert '--settings sets --min-score' in one_error_line(capsys)
  assert evaluate.main([truth, *FINDER, *settings, '--calibrate', 'gIoU', '--out', str(tmp_path / 'b')]) == 2
  assert 'leave --settings out' in one_error_line(capsys)
  assert evaluate.main([truth, *FINDER, *settings, '--out', str(tmp_path / 'c')]) == 0  # The calibration, scored.
  assert metrics_of(tmp_path / 'c')['configurations'][0]['metrics']['*']['cgF1'] == pytest.approx(100.0)


@pytest.mark.parametrize('make,phrase', [
    (lambda tmp: (tmp / 'empty').mkdir() or tmp / 'empty', 'holds no image folders'),
    (lambda tmp: (tmp / 'half' / '.partial' / 'new' / 'p0').mkdir(parents=True) or tmp / 'half', 'holds no image folders'),
    (lambda tmp: tmp / 'labels' / 'instances.json', 'annotations without a score'),
])
def test_predictions_that_cannot_be_scored_are_one_line(tmp_path, capsys, make, phrase):
  truth = write_coco(tmp_path / 'labels')
  assert evaluate.main([truth, '--predictions', str(make(tmp_path)), '--out', str(tmp_path / 'eval')]) == 2
  assert phrase in one_error_line(capsys)
  assert not (tmp_path / 'eval' / 'metrics.json').exists()


@pytest.mark.slow  # A local Ray: about a minute.
def test_the_local_and_ray_engines_give_the_same_numbers(tmp_path, clipseg_dir, sam2_dir):
  import shutil
  import subprocess
  import sys
  import tempfile

  from conftest import ROOT
  pytest.importorskip('ray')
  scratch = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # Ray's socket paths must stay under 107 bytes.
  truth = write_coco(tmp_path / 'labels')
  flags = [truth, '--finder-model', clipseg_dir, '--sam2-model', sam2_dir, '--device', 'cpu', '--calibrate', 'gIoU',
           '--min-scores', '0,0.5', '--thresholds', 'adaptive,0']

  def run(*extra):
    result = subprocess.run([sys.executable, '-m', 'seg_bridge.evaluate', *flags, *extra], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env={**os.environ, 'HF_HUB_OFFLINE': '1',
                                                         'RAY_USAGE_STATS_ENABLED': '0', 'TMPDIR': scratch})
    assert result.returncode == 0 and 'Traceback' not in result.stderr, result.stderr
  try:
    run('--out', str(tmp_path / 'local'))
    run('--out', str(tmp_path / 'ray'), '--engine', 'ray', '--workers', '2')
  finally:
    shutil.rmtree(scratch, ignore_errors=True)

  def numbers(out):
    report = metrics_of(out)
    for config in report['configurations']:
      assert config.pop('seconds_per_image') > 0
    return {**report, 'command': None}
  local, ray = numbers(tmp_path / 'local'), numbers(tmp_path / 'ray')
  assert local == ray
  assert any(p['metrics']['*']['presence']['TP'] for p in local['configurations'][0]['calibration']['grid'])


def test_missing_weights_are_one_line_exit_2_and_keep_nothing_half_done(tmp_path, capsys):
  truth = write_coco(tmp_path / 'labels')
  assert evaluate.main([truth, '--finder-model', str(tmp_path / 'nowhere'), '--device', 'cpu',
                        '--out', str(tmp_path / 'eval')]) == 2
  assert 'nowhere' in one_error_line(capsys)
  assert not (tmp_path / 'eval' / 'metrics.json').exists()


def test_configurations_are_compared_in_one_table_and_calibrated_apart(tmp_path, shapes):
  truth = write_coco(tmp_path / 'labels')
  assert evaluate.main([truth, '--configuration', 'strict=--finder grounding-dino',
                        '--configuration', 'loose=--finder grounding-dino --min-score 0.2',
                        '--configuration', '--finder sam3 --min-score 0.9', '--out', str(tmp_path / 'eval')]) == 0
  configs = metrics_of(tmp_path / 'eval')['configurations']
  assert [c['name'] for c in configs] == ['strict', 'loose', '--finder sam3 --min-score 0.9']
  assert configs[0]['metrics']['square']['gIoU'] == 1.0
  assert configs[1]['metrics']['square']['gIoU'] == pytest.approx(4 * (100 / 136) / 6)
  assert configs[2]['metrics']['disc']['presence']['TP'] == 0  # 0.9 leaves the discs (0.6) out.
  table = (tmp_path / 'eval' / 'metrics.md').read_text()
  assert '| strict | all |' in table and '| loose | square |' in table
  assert (tmp_path / 'eval' / 'plots' / 'comparison.png').is_file()
  assert evaluate.main([truth, '--configuration', 'a=--finder grounding-dino', '--configuration',
                        'b=--finder sam3', '--calibrate', 'gIoU', '--out', str(tmp_path / 'cal')]) == 0
  assert [json.loads((tmp_path / 'cal' / f'settings-{k}.json').read_text())['finder'] for k in (1, 2)] == [
      'grounding-dino', 'sam3']


def test_a_crowd_region_in_the_coco_file_is_ignored(tmp_path, shapes, monkeypatch):
  from pycocotools import mask as mask_utils
  truth = write_coco(tmp_path / 'labels')
  patch = np.zeros(photo(0)[0].shape[:2], bool)
  patch[40:46, 60:66] = True  # The orange patch, which ShapeSegmenter takes for a square at 0.3.
  rle = mask_utils.encode(np.asfortranarray(patch.astype(np.uint8)))
  crowd = {'size': rle['size'], 'counts': rle['counts'].decode()}
  edit_coco(truth, lambda d: d['annotations'].extend(
      {'id': 100 + k, 'image_id': k + 10, 'category_id': 1, 'segmentation': crowd, 'iscrowd': 1} for k in range(6)))
  (image,) = [i for i in read_truth(truth).images if i.name == 'p2.png']
  assert image.masks.get('square', []) == [] and len(image.crowd['square']) == 1
  from seg_bridge.evaluation import report
  loaded, write_worst = [], report.write_worst
  monkeypatch.setattr(report, 'write_worst', lambda out, worst, load: write_worst(
      out, worst, lambda path: loaded.append(path) or load(path)))
  assert evaluate.main([truth, *FINDER, '--min-score', '0.2', '--out', str(tmp_path / 'eval')]) == 0
  assert loaded and sorted(loaded) == sorted(set(loaded))  # worst/ draws each image's pictures from one load.
  (picture,) = (tmp_path / 'eval' / 'worst').glob('*/square/*_p2.png')
  from PIL import Image
  with Image.open(picture) as drawn:  # The truth side, on the right, shows the crowd region.
    assert np.any(np.asarray(drawn.convert('RGB'))[43, 80 + 8 + 63] != photo(2)[0][43, 63])
  square = metrics_of(tmp_path / 'eval')['configurations'][0]['metrics']['square']
  # As in the test above, each photo's patch is predicted; now it lies on a crowd region: no pixel of it counts.
  assert square['gIoU'] == 1.0 and square['cIoU'] == 1.0 and square['AP'] == pytest.approx(1.0)
  # SAM 3's evaluator drops crowds: the patches stay false positives for presence and pmF1.
  assert square['presence'] == {'TP': 4, 'FP': 2, 'FN': 0, 'TN': 0} and square['pmF1'] == pytest.approx(2 / 3)


def test_a_names_file_renames_categories_to_prompts(tmp_path, shapes, capsys):
  truth = write_coco(tmp_path / 'labels')
  edit_coco(truth, lambda d: d['categories'][0].update(name='red square'))
  (tmp_path / 'names.json').write_text('{"red square": "square"}')
  assert evaluate.main([truth, *FINDER, '--names', str(tmp_path / 'names.json'), '--out', str(tmp_path / 'eval')]) == 0
  report = metrics_of(tmp_path / 'eval')
  assert report['prompts'] == ['disc', 'square'] and report['configurations'][0]['metrics']['square']['gIoU'] == 1.0
  (tmp_path / 'names.json').write_text('["square"]')
  assert evaluate.main([truth, *FINDER, '--names', str(tmp_path / 'names.json'), '--out', str(tmp_path / 'x')]) == 2
  assert 'is not a JSON object of category -> prompt' in one_error_line(capsys)


def test_an_evaluation_killed_with_sigkill_resumes_to_the_same_metrics(tmp_path, clipseg_dir, sam2_dir):
  import signal
  import subprocess
  import sys
  import time

  from conftest import ROOT
  truth = write_coco(tmp_path / 'labels', count=8)
  flags = [truth, '--finder-model', clipseg_dir, '--sam2-model', sam2_dir, '--device', 'cpu', '--calibrate', 'gIoU',
           '--min-scores', '0,0.5', '--thresholds', 'adaptive,0']

  def command(out):
    return [sys.executable, '-m', 'seg_bridge.evaluate', *flags, '--out', str(out)]
  env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
  subprocess.run(command(tmp_path / 'whole'), cwd=ROOT, env=env, capture_output=True, timeout=300, check=True)
  process = subprocess.Popen(command(tmp_path / 'eval'), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 120
  while time.monotonic() < deadline and process.poll() is None:
    caches = list((tmp_path / 'eval').glob('cache/*/*.json'))
    if len(caches) >= 3:
      break
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  done = len(list((tmp_path / 'eval').glob('cache/*/*.json')))
  assert 0 < done < 8 and not (tmp_path / 'eval' / 'metrics.json').exists()
  result = subprocess.run(command(tmp_path / 'eval'), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert f'{8 - done} of 8 images to segment ({done} cached)' in result.stdout

  def without_seconds(report):
    for config in report['configurations']:
      config.pop('seconds_per_image')
    return {**report, 'command': None}
  assert without_seconds(metrics_of(tmp_path / 'eval')) == without_seconds(metrics_of(tmp_path / 'whole'))
  from PIL import Image
  (sweep,) = (tmp_path / 'eval' / 'plots').glob('*_sweep.png')
  with Image.open(sweep) as picture:  # A panel per --threshold, side by side.
    assert picture.width > 2 * picture.height


def test_no_image_that_can_be_segmented_is_one_line_exit_2(tmp_path, shapes, capsys):
  truth = write_coco(tmp_path / 'labels', count=2)
  for k in range(2):
    (tmp_path / 'labels' / f'p{k}.png').write_bytes(b'')
  assert evaluate.main([truth, *FINDER, '--out', str(tmp_path / 'eval')]) == 2
  err = capsys.readouterr().err
  lines = [line for line in err.split('\n') if 'error: ' in line]
  assert len(lines) == 3 and 'Traceback' not in err, err  # Each image, then the run.
  assert all('not a readable image' in line for line in lines[:2])
  assert lines[2] == 'error: grounding-dino + SAM vit_b: none of the images could be segmented (each said above); ' \
                     'nothing to score.'
  assert not (tmp_path / 'eval' / 'metrics.json').exists()


def test_a_coco_results_list_scores_against_the_ground_truths_ids(tmp_path, shapes, capsys):
  truth = write_coco(tmp_path / 'labels')
  data = json.loads(open(truth).read())
  results = [{'image_id': a['image_id'], 'category_id': a['category_id'], 'segmentation': a['segmentation'],
              'score': 0.8} for a in data['annotations']]  # Exactly the truth (polygons and RLE alike).
  results.append({'image_id': 11, 'category_id': 2, 'score': 0.1,  # A disc on p1, which has none.
                  'segmentation': {'size': [64, 80], 'counts': coco_rle(photo(0)[1]['disc'][0])['counts']}})
  (tmp_path / 'results.json').write_text(json.dumps(results))
  assert evaluate.main([truth, '--predictions', str(tmp_path / 'results.json'), '--out', str(tmp_path / 'eval')]) == 0
  disc = metrics_of(tmp_path / 'eval')['configurations'][0]['metrics']['disc']
  assert disc['presence'] == {'TP': 3, 'FP': 1, 'FN': 0, 'TN': 2} and disc['AP'] == pytest.approx(1.0)
  (tmp_path / 'bad.json').write_text(json.dumps([{'image_id': 10, 'category_id': 9, 'score': 1, 'segmentation': []}]))
  assert evaluate.main([truth, '--predictions', str(tmp_path / 'bad.json'), '--out', str(tmp_path / 'x')]) == 2
  assert 'result 0 is not a COCO segmentation result with known ids' in one_error_line(capsys)
  folder = write_folder(tmp_path / 'folder')
  assert evaluate.main([folder, '--predictions', str(tmp_path / 'results.json'), '--out', str(tmp_path / 'y')]) == 2
  assert 'need COCO ground truth' in one_error_line(capsys)


@pytest.mark.parametrize('flag,value,phrase', [
    ('--min-scores', '0.1,abc', "argument --min-scores: 'abc' is not a number"),
    ('--min-scores', '0.1,2', 'argument --min-scores: 2 is not in [0, 1]'),
    ('--thresholds', 'adaptive,x', "argument --thresholds: 'x' is not a number"),
])
def test_a_bad_grid_is_one_line_exit_2(tmp_path, capsys, flag, value, phrase):
  with pytest.raises(SystemExit) as stop:
    evaluate.main(['labels.json', '--calibrate', 'gIoU', flag, value, '--out', str(tmp_path / 'eval')])
  assert stop.value.code == 2 and phrase in one_error_line(capsys)
