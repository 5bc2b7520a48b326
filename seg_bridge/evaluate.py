r"""Scores text-prompted segmentation on your labelled images; calibrates its
thresholds; compares configurations.

    python -m seg_bridge.evaluate labels/instances.json --out eval/                     # CLIPSeg + SAM
    python -m seg_bridge.evaluate labels/ --finder sam3 --calibrate cgF1 --out eval/    # -> eval/settings.json
    python segment.py --finder sam3 --settings eval/settings.json --prompt "dog, ball" photos/
    python -m seg_bridge.evaluate labels/instances.json --out eval/ \
        --configuration "clipseg=--finder clipseg" --configuration "dino=--finder grounding-dino --sam2-model facebook/sam2.1-hiera-tiny"
    python -m seg_bridge.evaluate labels/instances.json --predictions segment_out/ --out eval/   # a past run

Ground truth: COCO instances (--images: the folder file_name is relative to;
default the JSON file's own) or a folder of NAME.jpg with NAME/LABEL.png
masks (seg_bridge.evaluation.truth). The prompts are the category names,
renamed by --names FILE ({"sports ball": "ball"}). Each configuration is
segment.py's segmenter flags (--finder ... --settings ...), or
--predictions: a segment.py --out folder or an exported COCO file, scored
without running a model.

Metrics, per prompt and over all (definitions and sources in
seg_bridge/evaluation/metrics.py): gIoU and cIoU (referring segmentation's
IoU of the union masks: mean over image-prompt pairs, and cumulative),
COCO mask AP / AP50 / AP75 (pycocotools), presence precision / recall / MCC
(is the prompt in the image, and did anything come back), SAM 3's cgF1
(100 x positive micro F1 x presence MCC), and seconds per image.

--calibrate METRIC sweeps --min-scores (and, for CLIPSeg, --thresholds),
picks the best point for METRIC overall and per prompt, and writes
OUT/settings.json (one per configuration: settings-N.json), which
segment.py, segment_video.py and the demo read with --settings. Each image
is segmented once per configuration; its candidates are cached in
OUT/cache/ as they are done, so an interrupted evaluation resumes.

OUT gets metrics.json, metrics.md, plots/ and worst/ (the worst images per
prompt, prediction beside truth). Exit status: 0 done; 1 done, some images
left out (each said); 2 nothing done (bad ground truth, option or weights);
130 Ctrl-C, 143 SIGTERM (finished images kept in the cache).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import inspect
import os
import shlex
import sys

from seg_bridge.cli import (OneLineParser, add_engine_arguments, add_segmenter_arguments, check_out, engine_problem,
                            error, load_models, options_from, source_of, unit_interval)
from vit_jax.interrupts import StopRequest


@dataclasses.dataclass(frozen=True)
class Configuration:
  name: str
  options: object = None  # seg_bridge.build.Options, or None for predictions.
  predictions: str | None = None


class _ConfigurationParser(argparse.ArgumentParser):
  def error(self, message):
    raise ValueError(f'--configuration: {message}.')


def describe(options) -> str:
  from seg_bridge.segmenters import SEGMENTERS
  if options.finder in SEGMENTERS:
    return options.finder
  return f'{options.finder} + ' + ('SAM 2' if options.masker == 'sam2' else f'SAM {options.sam_type}')


def configurations(args: argparse.Namespace) -> list[Configuration]:
  """The command line's configurations, checked before any model loads (ValueError)."""
  from seg_bridge.build import check
  found = []
  for text in args.configuration:
    name, flags = text.split('=', 1) if '=' in text and not text.lstrip().startswith('-') else ('', text)
    parser = _ConfigurationParser(prog='--configuration', add_help=False)
    add_segmenter_arguments(parser)
    options = options_from(parser.parse_args(shlex.split(flags)))
    check(options)
    found.append(Configuration(name.strip() or flags.strip() or describe(options), options))
  found += [Configuration(f'predictions {path}', predictions=path) for path in args.predictions]
  if not found:
    options = options_from(args)
    check(options)
    found.append(Configuration(describe(options), options))
  names = [c.name for c in found]
  if len(set(names)) < len(names):
    raise ValueError('two configurations are the same; give each once.')
  if args.calibrate and any(isinstance(c.options and c.options.min_score, dict) for c in found):
    raise ValueError('--calibrate starts from the finder\'s defaults: leave --settings out of its configurations.')
  return found


def default_min_score(options) -> float:
  from seg_bridge.finders import FINDERS
  from seg_bridge.segmenters import SEGMENTERS
  cls = SEGMENTERS.get(options.finder) or FINDERS[options.finder]
  return inspect.signature(cls.__init__).parameters['min_score'].default


def sweep_plan(config: Configuration, args) -> tuple:
  """(options to segment with, thresholds, grid, the settings as given as a grid point)."""
  from seg_bridge.evaluation.sweep import ADAPTIVE, AS_GIVEN, threshold_key
  options = config.options
  if not args.calibrate or options is None:
    return options, None, [(AS_GIVEN, None)], (AS_GIVEN, None)
  given_min = options.min_score if options.min_score is not None else default_min_score(options)
  min_scores = sorted(set(args.min_scores) | {given_min})
  thresholds = (None,)
  if options.finder == 'clipseg':
    thresholds = tuple(dict.fromkeys([*args.thresholds, options.threshold]))
  grid = [(threshold_key(t), m) for t in thresholds for m in min_scores]
  given = (threshold_key(options.threshold) if options.finder == 'clipseg' else ADAPTIVE, given_min)
  return dataclasses.replace(options, min_score=min_scores[0], threshold=None), thresholds, grid, given


def unit_intervals(text: str) -> tuple[float, ...]:
  """argparse type: '0.1,0.2' -> (0.1, 0.2), each in [0, 1], each once."""
  return tuple(dict.fromkeys(unit_interval(part.strip()) for part in text.split(',')))


def thresholds_list(text: str) -> tuple[float | None, ...]:
  """argparse type: unit_intervals, where 'adaptive' (CLIPSeg's own threshold) is None."""
  from seg_bridge.evaluation.sweep import ADAPTIVE
  return tuple(dict.fromkeys(None if part.strip() == ADAPTIVE else unit_interval(part.strip())
                             for part in text.split(',')))


def parse_args(argv=None):
  from seg_bridge.evaluation.calibrate import CALIBRATION_METRICS, DEFAULT_MIN_SCORES, DEFAULT_THRESHOLDS
  parser = OneLineParser(prog='python -m seg_bridge.evaluate', description=__doc__.split('\n')[0],
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n\n', 1)[1])
  parser.add_argument('truth', help='COCO instances .json, or a folder of images with NAME/LABEL.png masks.')
  parser.add_argument('--images', default=None, help="COCO: the folder its file_names are relative to (default: "
                                                      "the JSON file's folder).")
  parser.add_argument('--names', default=None, metavar='FILE', help='JSON {"category": "prompt"}: what to ask for '
                                                                    'each category (default: its name).')
  parser.add_argument('--out', default='eval_out', help='Output folder (default: eval_out).')
  add_segmenter_arguments(parser)
  parser.add_argument('--configuration', action='append', default=[], metavar='[NAME=]FLAGS',
                      help='A configuration as segment.py flags, named or not, e.g. "dino=--finder grounding-dino '
                           '--min-score 0.3"; repeat to compare several (then the flags above are not used).')
  parser.add_argument('--predictions', action='append', default=[], metavar='RUN',
                      help='Score a segment.py --out folder or an exported COCO file instead of running models.')
  parser.add_argument('--calibrate', choices=CALIBRATION_METRICS, default=None, metavar='METRIC',
                      help=f'Sweep the thresholds and write the best for METRIC ({", ".join(CALIBRATION_METRICS)}) '
                           'to OUT/settings.json.')
  parser.add_argument('--min-scores', type=unit_intervals, default=DEFAULT_MIN_SCORES,
                      metavar='LIST', help='--calibrate: the --min-score values to try (default 0.05,0.1,...,0.95).')
  parser.add_argument('--thresholds', type=thresholds_list,
                      default=DEFAULT_THRESHOLDS, metavar='LIST',
                      help='--calibrate, CLIPSeg: the --threshold values to try (default adaptive,0.3,0.4,0.5,0.6).')
  parser.add_argument('--worst', type=int, default=5, metavar='N', help='Worst images kept per prompt (default 5).')
  parser.add_argument('--redo', action='store_true', help='Segment again images whose candidates are cached.')
  add_engine_arguments(parser, 'image', listing=False)  # The images are the ground truth's.
  return parser.parse_args(argv)


def segment_all(config: Configuration, plan: tuple, truth, args, counts) -> dict[str, dict]:
  """The configuration's candidates for every labelled image: cached ones
  read, the rest segmented here or over Ray and cached. EngineError, or
  ValueError / OSError where the models cannot load."""
  from seg_bridge.engines import EngineError, drive, run_ray
  from seg_bridge.evaluation.sweep import SweepJob, cache_key, read_record
  from seg_bridge.types import PromptError
  from seg_bridge.jobs import Item
  from seg_bridge.outputs import safe_stem
  options, thresholds, *_ = plan
  prompts = tuple(truth.prompts)
  cache = os.path.join(args.out, 'cache', cache_key(options, prompts, thresholds))
  os.makedirs(cache, exist_ok=True)
  items = [Item(image.path, source_of(image.path), f'{safe_stem(image.name)}-{k}')
           for k, image in enumerate(truth.images)]
  names = {item.name: image.name for item, image in zip(items, truth.images)}
  records = {} if args.redo else {names[i.name]: r for i in items
                                  if (r := read_record(os.path.join(cache, f'{i.name}.json'), i.source))}
  todo = [i for i in items if names[i.name] not in records]
  print(f'{config.name}: {len(todo)} of {len(items)} images to segment'
        + (f' ({len(items) - len(todo)} cached)' if len(todo) < len(items) else '') + '.')
  if todo:
    job = SweepJob(options, prompts, thresholds, cache)
    if args.engine == 'ray':
      results = run_ray(job, todo, workers=args.workers or (1, 1), gpus_per_worker=args.gpus_per_worker or 0.0,
                        cpus_per_worker=args.cpus_per_worker or 1.0, batch_size=args.batch_size or 1)
    else:
      try:
        results = map(job.worker(load_models(job), cache), todo)
      except (PromptError, ValueError, OSError) as e:  # Weights, --device, prompts too long for the model.
        raise EngineError(str(e)) from None
    drive(results, counts, total=len(todo), skipped=len(items) - len(todo), out_root=cache,
          record={'engine': args.engine, 'configuration': config.name}, unit='image')
  for item in todo:
    record = read_record(os.path.join(cache, f'{item.name}.json'), item.source)
    if record is not None:
      records[names[item.name]] = record
  return records


def score_all(configs: list[Configuration], truth, args, counts, made_by: str) -> tuple[list, list[str]]:
  """Each configuration's candidates (segmented or read) and scores; settings
  files written for calibrations. -> ([(config, plan, records, result)], lines of images left out)."""
  from seg_bridge.evaluation.calibrate import write_settings
  from seg_bridge.evaluation.predictions import read_predictions
  from seg_bridge.evaluation.scoring import score, seconds_per_image
  scored, left_out = [], []
  for index, config in enumerate(configs, start=1):
    plan = sweep_plan(config, args)
    if config.predictions:
      records, missing = read_predictions(config.predictions, truth)
    else:
      records = segment_all(config, plan, truth, args, counts)
      if not records:
        raise ValueError(f'{config.name}: none of the images could be segmented (each said above); nothing to score.')
      missing = [f'{i.name!r}: not segmented by {config.name} (see above); left out.' for i in truth.images
                 if i.name not in records]
    for line in missing:
      print(f'skipped: {line}', file=sys.stderr)
    left_out += missing
    result = score(truth, records, plan[2], plan[3], args.calibrate if config.options is not None else None)
    result.update(name=config.name, images=len(records), seconds_per_image=seconds_per_image(records))
    if 'best' in result:
      path = os.path.join(args.out, 'settings.json' if len(configs) == 1 else f'settings-{index}.json')
      write_settings(path, finder=config.options.finder, metric=args.calibrate, best=result['best'],
                     configuration=config.name, made_by=made_by)
      calibration = {k: result.pop(k) for k in ('metric', 'best', 'grid', 'as_given')}
      result['calibration'] = {**calibration, 'calibrated': result['metrics'], 'settings_file': os.path.basename(path)}
    scored.append((config, plan, records, result))
  return scored, left_out


def write_report(args, truth, scored: list, left_out: list[str], made_by: str) -> None:
  """metrics.json, metrics.md, plots/ and worst/ (seg_bridge.evaluation.report); prints the tables."""
  from seg_bridge.evaluation import report
  from seg_bridge.evaluation.scoring import calibrated_point, pairs_at, worst_pairs
  from vit_jax.images import load_image
  full = {'command': made_by, 'truth': args.truth, 'images': len(truth.images), 'prompts': truth.prompts,
          'skipped': sorted(set(left_out)), 'configurations': [result for *_, result in scored]}
  report.write_tables(args.out, full)
  report.write_plots(args.out, full)
  paths = {image.name: image.path for image in truth.images}
  worst = {}
  for index, (config, plan, records, result) in enumerate(scored, start=1):
    best = result.get('calibration', {}).get('best')
    point = plan[3] if best is None else calibrated_point(best, truth.prompts)  # Where it runs from now on.
    worst[report.slug(index, config.name)] = worst_pairs(pairs_at(truth, records, *point), args.worst, paths)
  for line in report.write_worst(args.out, worst, load_image):
    print(f'note: {line}', file=sys.stderr)
  print(report.markdown(full))
  print(f'Wrote {os.path.join(args.out, "metrics.json")!r}, metrics.md, plots/ and worst/.')


def main(argv=None, stop=None) -> int:
  """Runs the command; returns its exit status (`stop`: a StopRequest, for 130 / 143)."""
  args = parse_args(argv)
  from seg_bridge.engines import EngineError, start_ray, stop_ray
  from seg_bridge.evaluation.truth import TruthError, read_names, read_truth
  from seg_bridge.types import PromptError
  from vit_jax.files import Busy, hold_lock
  problem = engine_problem(args) or (args.worst < 0 and f'--worst {args.worst}: give a number >= 0.')
  if problem:
    return error(problem)
  try:
    configs = configurations(args)
    check_out(args.out)
    truth = read_truth(args.truth, args.images, read_names(args.names))
  except (TruthError, PromptError, ValueError) as e:
    return error(str(e))
  for line in truth.skipped:
    print(f'skipped: {line}', file=sys.stderr)
  for line in truth.notes:
    print(f'note: {line}', file=sys.stderr)
  try:
    os.makedirs(args.out, exist_ok=True)
    lock = hold_lock(os.path.join(args.out, '.lock'))
  except Busy:
    return error(f'another evaluation is writing to {args.out!r}; wait for it or choose another --out.')
  except OSError as e:
    return error(f'cannot write to --out {args.out!r} ({e.strerror or e}).')
  on_ray = args.engine == 'ray' and any(c.options is not None for c in configs)
  made_by = shlex.join(['python', '-m', 'seg_bridge.evaluate', *(sys.argv[1:] if argv is None else argv)])
  counts = collections.Counter()
  try:
    if on_ray:
      start_ray(args.ray_address)
    scored, left_out = score_all(configs, truth, args, counts, made_by)
    if on_ray:
      stop_ray()
      on_ray = False
    write_report(args, truth, scored, truth.skipped + left_out, made_by)
  except (TruthError, PromptError, ValueError, EngineError) as e:
    return error(str(e))
  except OSError as e:  # A full disk or lost permission: the cache keeps what was segmented.
    return error(f'cannot write {e.filename or args.out!r} ({e.strerror or e}); the images done are cached: free '
                 'space, then run the same command again.')
  except KeyboardInterrupt:
    print(f'interrupted; the images done are cached in {args.out!r}: run the same command again to go on.',
          file=sys.stderr)
    return stop.exit_status if stop is not None else 130
  finally:
    if on_ray:
      stop_ray()
    lock.close()
  return 1 if truth.skipped or left_out or counts['failed'] else 0


if __name__ == '__main__':
  STOP = StopRequest()
  STOP.install()
  try:
    sys.exit(main(stop=STOP))
  except KeyboardInterrupt:
    print('interrupted before any image was done.', file=sys.stderr)
    sys.exit(STOP.exit_status)
