"""What segment.py and segment_video.py share on the command line: the
segmenter's options, one-line errors, the checks before any model loads,
loading the segmenter, and what identifies an input (each done once)."""

from __future__ import annotations

import argparse
import collections
import math
import os
import sys

from seg_bridge.build import FINDER_CHOICES, Options


class OneLineParser(argparse.ArgumentParser):
  """argparse whose usage errors are one line (exit status 2), not the whole usage."""

  def error(self, message):
    self.exit(2, f'error: {message} (see --help).\n')


def unit_interval(text: str) -> float:
  """argparse type: a number in [0, 1]."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
  if not (math.isfinite(value) and 0.0 <= value <= 1.0):
    raise argparse.ArgumentTypeError(f'{text} is not in [0, 1]')
  return value


def add_segmenter_arguments(parser: argparse.ArgumentParser) -> None:
  """The options seg_bridge.build.Options holds, as flags."""
  parser.add_argument('--finder', default='clipseg', choices=FINDER_CHOICES,
                      help='What turns the words into regions: CLIPSeg heatmaps or Grounding DINO boxes; or sam3, '
                           'which finds every instance and outlines it itself (no SAM options then).')
  parser.add_argument('--finder-model', default=None,
                      help="The finder's Hugging Face name or local folder (default: its standard checkpoint).")
  parser.add_argument('--sam-checkpoint', default=None,
                      help="SAM .pth checkpoint file (default: the official one of --sam-type, downloaded once into "
                           "torch.hub's checkpoint folder).")
  parser.add_argument('--sam-type', default='vit_b', choices=('vit_b', 'vit_l', 'vit_h'))
  parser.add_argument('--sam2-model', default=None,
                      help='Use SAM 2 instead: a Hugging Face name (e.g. facebook/sam2.1-hiera-large) or a local '
                           'folder; --sam-checkpoint is then ignored.')
  parser.add_argument('--min-score', type=unit_interval, default=None,
                      help="A prompt matches only where the finder's confidence reaches this: the heatmap's "
                           "probability for CLIPSeg (default 0.5), a box's score for Grounding DINO (default 0.35).")
  parser.add_argument('--threshold', type=unit_interval, default=None,
                      help='CLIPSeg only: fixed heatmap threshold in [0, 1] (default: adaptive, per image and prompt).')
  parser.add_argument('--settings', default=None, metavar='FILE',
                      help='--min-score (and --threshold) per prompt from a calibration: the settings.json of '
                           'python -m seg_bridge.evaluate --calibrate, made for the same --finder.')
  parser.add_argument('--max-per-prompt', type=int, default=16,
                      help='At most this many instances per prompt, the most confident (default 16).')
  parser.add_argument('--device', default=None, help='cuda, mps or cpu (default: the best available).')


def add_engine_arguments(parser: argparse.ArgumentParser, unit: str, listing: bool = True) -> None:
  """Where the work runs: here, one `unit` after another, or over Ray; and
  (`listing`) --list, more inputs from a file."""
  if listing:
    parser.add_argument('--list', action='append', default=[], metavar='FILE',
                        help=f'A file naming one {unit} (path or URL) per line, for more than a command line holds.')
  parser.add_argument('--engine', default='local', choices=('local', 'ray'),
                      help=f"local: one {unit} after another in this process; ray: over a Ray Data actor pool, on "
                           'this machine or a cluster (pip install -e ".[ray]"; --out must be a folder every node '
                           'sees).')
  parser.add_argument('--ray-address', default=None,
                      help='With --engine ray: the cluster to join (default: $RAY_ADDRESS, else a local one).')
  parser.add_argument('--workers', type=pool_size, default=None, metavar='N|MIN,MAX',
                      help='With --engine ray: actors, each loading the models once (MIN,MAX: autoscaled; default 1).')
  parser.add_argument('--gpus-per-worker', type=non_negative, default=None,
                      help='With --engine ray: GPUs each actor holds (fractions share one; default 0).')
  parser.add_argument('--cpus-per-worker', type=non_negative, default=None,
                      help='With --engine ray: CPU cores each actor holds, and its torch threads (default 1).')
  parser.add_argument('--batch-size', type=positive_int, default=None,
                      help=f'With --engine ray: {unit}s an actor takes per call (default 1).')


def engine_problem(args: argparse.Namespace) -> str | None:
  """Why the engine options do not go together, or None."""
  ray_only = [flag for flag, value in (('--ray-address', args.ray_address), ('--workers', args.workers),
                                       ('--gpus-per-worker', args.gpus_per_worker),
                                       ('--cpus-per-worker', args.cpus_per_worker), ('--batch-size', args.batch_size))
              if value is not None]
  if args.engine == 'local' and ray_only:
    return f'{ray_only[0]} applies to --engine ray only.'
  if args.engine == 'ray' and getattr(args, 'shard', None):
    return '--shard splits work without Ray (job arrays); with --engine ray, Ray spreads it: leave --shard out.'
  return None


def listed_inputs(files: list[str]) -> list[str]:
  """The inputs the --list files name, one per line (blank lines and # comments skipped)."""
  inputs = []
  for path in files:
    try:
      with open(path, encoding='utf-8') as f:
        inputs += [line.strip() for line in f if line.strip() and not line.lstrip().startswith('#')]
    except (OSError, UnicodeDecodeError) as e:
      reason = e.strerror if isinstance(e, OSError) and e.strerror else 'not a UTF-8 text file'
      raise ValueError(f'--list {path!r} cannot be read ({reason}).') from None
  return inputs


def pool_size(text: str) -> tuple[int, int]:
  """argparse type for --workers: 'N' (a fixed pool) or 'MIN,MAX' (autoscaled)."""
  parts = text.split(',')
  if not (1 <= len(parts) <= 2 and all(p.strip().isdigit() for p in parts)):
    raise argparse.ArgumentTypeError(f'{text!r} is not N or MIN,MAX (whole numbers)')
  low, high = int(parts[0]), int(parts[-1])
  if not 1 <= low <= high:
    raise argparse.ArgumentTypeError(f'{text!r}: need 1 <= MIN <= MAX')
  return low, high


def positive_int(text: str) -> int:
  """argparse type: a whole number >= 1."""
  if not (text.isdigit() and int(text) >= 1):
    raise argparse.ArgumentTypeError(f'{text!r} is not a whole number >= 1')
  return int(text)


def non_negative(text: str) -> float:
  """argparse type: a finite number >= 0."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
  if not (math.isfinite(value) and value >= 0):
    raise argparse.ArgumentTypeError(f'{text} is not a number >= 0')
  return value


def options_from(args: argparse.Namespace) -> Options:
  """The segmenter's options; ValueError (one line) for a --settings file that cannot serve."""
  min_score, threshold = args.min_score, args.threshold
  if args.settings:
    from seg_bridge.evaluation.calibrate import read_settings
    if min_score is not None or threshold is not None:
      raise ValueError('--settings sets --min-score and --threshold per prompt: leave those out.')
    chosen = read_settings(args.settings, args.finder)
    min_score, threshold = chosen['min_score'], chosen['threshold']
  return Options(finder=args.finder, finder_model=args.finder_model, masker='sam2' if args.sam2_model else 'sam',
                 masker_model=args.sam2_model or args.sam_checkpoint, sam_type=args.sam_type,
                 min_score=min_score, threshold=threshold, max_per_prompt=args.max_per_prompt,
                 device=args.device)


def error(message: str) -> int:
  """Says `message` in one line; returns the exit status of a bad option (2)."""
  print(f'error: {message}', file=sys.stderr)
  return 2


def checked(args: argparse.Namespace) -> tuple[Options, list[str]]:
  """The options and prompts of the command line, checked before any model
  loads (PromptError or ValueError with the one-line reason)."""
  from seg_bridge.build import check
  from seg_bridge.types import parse_prompts
  options = options_from(args)
  check(options)
  prompts = parse_prompts(args.prompt)
  check_out(args.out)
  return options, prompts


def settings_for(options: Options, prompts: list[str]) -> dict:
  """What makes a result (for recognising finished work), known before any model loads."""
  from seg_bridge.build import settings_of
  return {'prompts': prompts, **settings_of(options)}


def load_models(job):
  """job.load(), with Hugging Face's download bars off (one bar, over the inputs, is enough)."""
  from transformers.utils import logging as hf_logging
  hf_logging.disable_progress_bar()
  return job.load()


def run_job(args: argparse.Namespace, job, count: int, items_of, *, unit: str, stop=None, shard: str = '') -> int:
  """What both commands do once their inputs are known: load the models
  (--engine local; Ray's actors load their own), open --out, skip what an
  earlier run did with the same settings, run the rest and report them
  (seg_bridge.engines.drive). items_of(out) -> the run's Items, named against
  --out; `count` inputs in all. Returns the exit status: 0 all done, 1 some
  failed, 2 nothing could be done, 130 / 143 stopped (`stop`: a StopRequest)."""
  from seg_bridge.engines import EngineError, drive, run_ray, start_ray, stop_ray
  from seg_bridge.outputs import OutputError, OutputFolder
  from seg_bridge.types import PromptError
  on_ray = args.engine == 'ray'
  try:
    models = start_ray(args.ray_address) if on_ray else load_models(job)
  except (PromptError, ValueError, OSError, EngineError) as e:  # Weights, --device, prompts too long, no Ray.
    return error(str(e))
  try:
    out = OutputFolder(args.out, shard=shard)
  except OutputError as e:
    if on_ray:
      stop_ray()
    return error(str(e))
  counts, clean = collections.Counter(), False
  try:
    items = items_of(out)
    todo = [i for i in items if args.redo or not out.is_done(i.name, i.source, job.settings)]
    results = (run_ray(job, todo, workers=args.workers or (1, 1), gpus_per_worker=args.gpus_per_worker or 0.0,
                       cpus_per_worker=args.cpus_per_worker or 1.0, batch_size=args.batch_size or 1)
               if on_ray else map(job.worker(models, out), todo))
    record = {'engine': args.engine, 'workers': args.workers, 'cpus_per_worker': args.cpus_per_worker,
              'gpus_per_worker': args.gpus_per_worker, 'settings': job.settings}
    drive(results, counts, total=len(todo), skipped=len(items) - len(todo), out_root=args.out, record=record,
          suffix=f'-{shard}' if shard else '', unit=unit)
    clean = not counts['failed']
  except EngineError as e:
    return error(str(e))
  except OSError as e:  # A full disk or lost permission as errors.jsonl or run.json is written: what is done is kept.
    written = counts['written']
    kept = f'the {written} {unit} written is kept' if written == 1 else f'the {written} {unit}s written are kept'
    print(f'error: cannot write {e.filename or args.out!r} ({e.strerror or e}); {kept}. Free space, then run the '
          'same command again to finish.', file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print(f'interrupted: {counts["written"] + counts["skipped"]} of {count} {unit}s done in {args.out!r}; run '
          'the same command again to finish the rest.', file=sys.stderr)
    clean = True  # Stopped on purpose: nothing in Ray's log to look at.
    return stop.exit_status if stop is not None else 130
  finally:
    if on_ray:
      stop_ray(keep_log=not clean)
    out.close()
  if counts['skipped']:
    print(f'{counts["skipped"]} of {count} {unit}s were done by an earlier run with the same settings and kept '
          '(--redo does them again).')
  return 1 if counts['failed'] else 0


def check_out(path: str) -> None:
  """Fails early, before models load and without writing, where --out cannot
  be a folder this process can write into."""
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = 'is a file' if existing == os.path.abspath(path) else f'lies under the file {existing!r}'
    raise ValueError(f'--out {path!r} {where}; give a folder.')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'--out {path!r}: no permission to write in {existing!r}; give a folder you can write to.')


def source_of(path: str) -> str:
  """What identifies an input across runs: its URL, or its absolute path (links resolved)."""
  return path if '://' in path else os.path.realpath(path)


def unique_sources(paths: list[str]) -> tuple[list[str], list[str]]:
  """The paths naming distinct inputs (a file given twice, through a link
  or '..', is done once, under the first name), and a note for each other."""
  first, kept, notes = {}, [], []
  for path in paths:
    source = source_of(path)
    if source in first:
      notes.append(f'{path!r} is the same file as {first[source]!r}; it is segmented once, as the latter.')
    else:
      first[source] = path
      kept.append(path)
  return kept, notes
