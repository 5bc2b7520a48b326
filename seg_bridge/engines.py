"""Where a job's inputs run, and the driver that reports them.

    results = map(job.worker(job.load(), out), items)   # one after another, in this process
    start_ray(address); results = run_ray(job, items, workers=(1, 4))   # a Ray Data actor pool
    drive(results, counts, total=len(items), ...)      # one bar, a line per failure, errors.jsonl, run.json

Ray (pip install -e ".[ray]"): the driver sends only the inputs' names;
each actor loads the models once (seg_bridge.jobs), decodes its images
itself and writes their folders straight into --out, which must therefore be
a folder every node sees at the same path (a shared file system). Ray
restarts an actor that dies and retries its batch; a retried input's folder
is written again whole, never twice.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator

from seg_bridge.jobs import FAILED, UNUSABLE, WRITTEN, Done, Item
from vit_jax.files import atomic_write


class EngineError(RuntimeError):
  """Nothing can be done (Ray missing or unreachable, the models do not load); one line."""


class _Actor:
  """A Ray Data actor: the job's worker, built once; a batch of inputs -> their Done rows."""

  def __init__(self, job, folder: str):
    try:
      os.chdir(folder)  # The driver's: relative inputs, --out and model folders mean the same here.
    except OSError:
      pass  # Another machine without that folder: absolute paths and URLs still serve.
    try:
      self.work, self.problem = job.open(), None
    except Exception as e:  # Missing weights, a bad device, prompts too long: every row says so.
      from seg_bridge.loading import reason
      self.work, self.problem = None, reason(e)

  def __call__(self, batch: dict) -> dict:
    rows = []
    for path, source, name in zip(batch['path'], batch['source'], batch['name']):
      item = Item(str(path), str(source), str(name))
      rows.append(self.work(item) if self.work else Done(item.path, item.name, UNUSABLE, self.problem))
    return {field.name: [getattr(row, field.name) for row in rows] for field in dataclasses.fields(Done)}


CONNECT_SECONDS = 10.0  # A cluster address must answer within this (TCP, then HTTP/2: Ray's GCS speaks gRPC).
JOIN_SECONDS = 120.0  # ray.init joining a given address, as a whole.
HTTP2_PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame.


def start_ray(address: str | None):
  """Joins the Ray cluster at `address` (or $RAY_ADDRESS), or starts one on
  this machine; quiet: no dashboard, no usage statistics, no Ray progress bars,
  Ray's own notes in a log file (_RayNotes), not among the command's lines.

  Bounded: an address that does not answer as a Ray cluster within
  CONNECT_SECONDS, or a join not done within JOIN_SECONDS, is one
  EngineError naming the address and the likely cause; ray.init joins a
  given address from a thread, so Ctrl-C and SIGTERM act at once
  (KeyboardInterrupt). A local cluster is started from this (the main)
  thread: its processes get Linux's parent-death signal when the thread
  that started them ends."""
  address = address or os.environ.get('RAY_ADDRESS') or None
  remote = bool(address) and address != 'auto'
  if remote:
    _probe(address)
    _use_local_token()  # Before Ray is imported: it reads its settings once.
  try:
    import ray
    import ray.data  # noqa: F401
  except ImportError:
    raise EngineError('--engine ray needs Ray: pip install -e ".[ray]" (or pip install "ray[data]").') from None
  os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
  logging.getLogger('ray').setLevel(logging.ERROR)
  _RAY_NOTES.divert()
  try:
    failure = _join_from_thread(ray, address) if remote else _init(ray, address)
  except BaseException:
    _RAY_NOTES.restore(keep=True)
    raise
  if failure is not None:
    _RAY_NOTES.restore(keep=True)
    raise EngineError(f'cannot start or join Ray at {address or "a local cluster"!r} '
                      f'({_ray_reason(failure)}).')
  for name in ('ray', 'ray.data'):  # Ray Data configures its own logger: its notes are not the user's.
    logging.getLogger(name).setLevel(logging.ERROR)
  context = ray.data.DataContext.get_current()
  context.enable_progress_bars = False
  context.print_on_execution_start = False
  return ray


def _init(ray, address: str | None) -> BaseException | None:
  """ray.init here; its failure, or None. ray.init makes SIGTERM exit at
  once: the command's own handler comes back after it (it says what was kept)."""
  main = threading.current_thread() is threading.main_thread()  # Only it has signal handlers.
  on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
  try:
    ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             configure_logging=True)
  except Exception as e:  # ConnectionError, a cluster of another version: one line.
    return e
  finally:
    if main:
      signal.signal(signal.SIGTERM, on_sigterm)
  return None


def _join_from_thread(ray, address: str) -> BaseException | None:
  """_init from a thread, waited for at most JOIN_SECONDS (interruptible)."""
  done, failure = threading.Event(), []

  def join():
    try:
      failure.append(_init(ray, address))
    except BaseException as e:  # Whatever ends it, the caller hears of it.
      failure.append(e)
    finally:
      done.set()
  threading.Thread(target=join, name='seg_bridge-ray-join', daemon=True).start()
  if not done.wait(JOIN_SECONDS):
    raise EngineError(f'joining Ray at {address!r} did not finish within {JOIN_SECONDS:g} s; '
                      f"Ray's log: {_RAY_NOTES.path}.")
  return failure[0]


def _probe(address: str) -> None:
  """EngineError unless `address` (HOST:PORT, or ray://HOST:PORT for Ray
  Client) answers as an HTTP/2 server within CONNECT_SECONDS: a wrong host,
  a closed port or another kind of server, in one line, not minutes of Ray's
  retries."""
  import socket
  host, _, port = address.removeprefix('ray://').rpartition(':')
  host = host.strip('[]')
  if not host or not port.isdigit():
    raise EngineError(f'--ray-address {address!r}: give HOST:PORT, the address `ray start --head` printed '
                      '(port 6379 by default).')
  hint = ('is Ray running there (ray start --head --port PORT), and is PORT its GCS port (6379 by default; '
          '10001 for ray://)?')
  try:
    with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS) as connection:
      connection.settimeout(CONNECT_SECONDS)
      connection.sendall(HTTP2_PREFACE)
      reply = connection.recv(9)
  except socket.gaierror as e:
    raise EngineError(f'cannot reach a Ray cluster at {address!r}: unknown host {host!r} ({e.strerror}).') from None
  except OSError as e:  # Refused, unreachable, timed out, reset.
    reason = 'no answer within {:g} s'.format(CONNECT_SECONDS) if isinstance(e, TimeoutError) else (
        e.strerror or type(e).__name__)
    raise EngineError(f'cannot reach a Ray cluster at {address!r} ({reason}); {hint}') from None
  if len(reply) < 9 or reply[3] != 4:  # An HTTP/2 server's first frame is its SETTINGS (type 4).
    raise EngineError(f'{address!r} answers, but not as a Ray cluster; {hint}')


def _use_local_token() -> None:
  """Ray turns token authentication on for a head started with `ray start
  --head` when a token exists there (~/.ray/auth_token, made by any earlier
  local ray.init), but never for a driver given an explicit address: it is
  then refused (InvalidAuthToken). Where this machine has a token and
  RAY_AUTH_MODE is unset, the driver sends it."""
  if 'RAY_AUTH_MODE' in os.environ:
    return
  token_file = os.environ.get('RAY_AUTH_TOKEN_PATH') or os.path.expanduser('~/.ray/auth_token')
  if os.environ.get('RAY_AUTH_TOKEN') or os.path.isfile(token_file):
    os.environ['RAY_AUTH_MODE'] = 'token'


def _ray_reason(error: BaseException) -> str:
  """ray.init's failure in a phrase, with the fix for token authentication."""
  text = ' '.join(str(error).split())
  log = ''
  if os.path.exists(_RAY_NOTES.path):
    with open(_RAY_NOTES.path, errors='replace') as f:
      log = f.read()[-20000:]
  if 'auth' in (text + log).lower() and 'token' in (text + log).lower():
    return ('the cluster uses token authentication and this machine has no token or another one: Ray turns it on for '
            '`ray start --head` where ~/.ray/auth_token exists; copy that file from the head to ~/.ray/auth_token '
            'here (or set RAY_AUTH_TOKEN), or start the head with RAY_AUTH_MODE=disabled on a trusted network')
  return (text[:200] or type(error).__name__) + f"; Ray's log: {_RAY_NOTES.path}"


def run_ray(job, items: list[Item], *, workers: tuple[int, int] = (1, 1), gpus_per_worker: float = 0.0,
            cpus_per_worker: float = 1.0, batch_size: int = 1) -> Iterator[Done]:
  """The job's inputs over a Ray Data actor pool of `workers` (min, max)
  actors, each holding `gpus_per_worker` GPUs and `cpus_per_worker` cores
  (Ray sets its thread count to them), `batch_size` inputs a call (after
  start_ray; stop_ray when done)."""
  import ray
  if not items:
    return
  workers = tuple(max(1, min(count, len(items))) for count in workers)  # No idle actors (Ray Data warns of them).
  dataset = ray.data.from_items([dataclasses.asdict(item) for item in items])
  results = dataset.map_batches(
      _Actor, fn_constructor_args=(job, os.getcwd()), batch_size=batch_size, batch_format='numpy',
      compute=ray.data.ActorPoolStrategy(min_size=workers[0], max_size=workers[1]),
      num_gpus=gpus_per_worker or None, num_cpus=cpus_per_worker)
  rows, before, started = iter(results.iter_rows()), set(threading.enumerate()), None
  try:
    for row in rows:
      if started is None:  # Ray Data's threads: up by its first row, before the caller could start any.
        started = set(threading.enumerate()) - before
      yield Done(**{key: str(value) for key, value in row.items()})
  finally:  # Ended early too (a model that does not load, Ctrl-C): Ray Data stops its executor and threads.
    if started is None:
      started = set(threading.enumerate()) - before
    rows.close()
    _join(started)


def _join(threads: set[threading.Thread], timeout: float = 10.0) -> None:
  """Waits for Ray Data's `threads`, told to stop, to end: one that calls
  Ray after ray.shutdown() ends the whole process with status 1 (ray-project/
  ray#19115), even one that said its error already. Its block prefetcher,
  parked until its iterator is collected, calls Ray only when those threads
  hand it blocks, and is left."""
  deadline = time.monotonic() + timeout
  for thread in threads:
    if thread.name != 'Prefetcher':
      thread.join(max(0.0, deadline - time.monotonic()))


def stop_ray(keep_log: bool = False) -> None:
  """Leaves the cluster (and stops a local one start_ray started); Ray's log
  ($TMPDIR/seg_bridge-ray-PID.log) is kept only if `keep_log` (a run that failed)."""
  import ray
  try:
    _RAY_NOTES.hold_all()  # ray.shutdown() prints the notes its deduplication held back, from this thread.
    ray.shutdown()
  finally:
    _RAY_NOTES.restore(keep=keep_log)


class _RayNotes:
  """Ray's own notes, kept out of the command's lines. Its C++ core writes to
  this process's file descriptor 2, below Python's logging (one per actor
  even in plain use: ray-project/ray#57733), and its driver prints the
  cluster's error messages to sys.stdout (an actor killed at the end of a run
  with its task retried: ray-project/ray#56472). While Ray runs, descriptor 2
  goes to a log file, and sys.stdout and sys.stderr pass on what this command
  writes but send what Ray's threads write to the same log; from hold_all()
  on, all of it."""

  def __init__(self):
    self.terminal, self.path, self.log, self.streams = None, '', None, ()

  def divert(self) -> None:
    self.path = os.path.join(tempfile.gettempdir(), f'seg_bridge-ray-{os.getpid()}.log')
    sys.stdout.flush()
    sys.stderr.flush()
    self.terminal, log = os.dup(2), os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 2)
    os.close(log)
    self.log = open(self.path, 'a', encoding='utf-8', errors='backslashreplace', buffering=1)
    terminal = io.TextIOWrapper(os.fdopen(os.dup(self.terminal), 'wb', buffering=0),
                                encoding=sys.__stderr__.encoding, errors='backslashreplace', write_through=True)
    self.streams = sys.stdout, sys.stderr, terminal
    sys.stdout, sys.stderr = _ExceptRayThreads(sys.stdout, self.log), _ExceptRayThreads(terminal, self.log)

  def hold_all(self) -> None:
    if self.terminal is not None:
      sys.stdout.flush()
      sys.stderr.flush()
      sys.stdout = sys.stderr = self.log

  def restore(self, keep: bool = False) -> None:
    """Puts the streams back; the log is removed unless `keep` (a failed run's: its messages name it)."""
    if self.terminal is None:
      return
    stdout, stderr, terminal = self.streams
    self.log.close()
    terminal.close()
    os.dup2(self.terminal, 2)
    os.close(self.terminal)
    sys.stdout, sys.stderr, self.terminal = stdout, stderr, None
    if os.path.exists(self.path) and not (keep and os.path.getsize(self.path)):
      os.remove(self.path)


class _ExceptRayThreads:
  """A text stream in place of `stream`: what Ray's threads write (named
  ray_*: ray_listen_error_messages prints the cluster's errors) goes to
  `notes`, the rest to `stream`."""

  def __init__(self, stream, notes):
    self.stream, self.notes = stream, notes

  def write(self, text: str) -> int:
    return (self.notes if threading.current_thread().name.startswith('ray_') else self.stream).write(text)

  def __getattr__(self, name):  # flush, fileno, isatty, encoding: the stream's own.
    return getattr(self.stream, name)


_RAY_NOTES = _RayNotes()


def drive(results: Iterable[Done], counts: collections.Counter, *, total: int, skipped: int, out_root: str,
          record: dict, suffix: str = '', unit: str = 'image') -> None:
  """Reports `results` as they come: a progress bar (done, skipped, failed,
  rate), a line per input, one per failure on stderr; then a summary line,
  OUT/errors.jsonl (the failures, absent when none) and OUT/run.json (counts,
  seconds, `record`: engine, workers, settings); `counts` gets 'written',
  'skipped' and 'failed'. EngineError where the models cannot load.
  Interrupted (KeyboardInterrupt), what came back is counted and recorded."""
  from tqdm import tqdm
  counts['skipped'] += skipped
  failures, started, finished, bar = [], time.perf_counter(), False, None
  try:
    for done in results:
      if done.status == UNUSABLE:
        raise EngineError(done.line)
      if bar is None:  # From the first result on: models that cannot load end the run in one line.
        bar = tqdm(total=total, unit=unit, disable=total < 2, dynamic_ncols=True)
        if not bar.disable:
          bar.start_t -= time.perf_counter() - started  # Its clock counts the wait for the first result too.
      counts[done.status] += 1
      bar.update()
      bar.set_postfix(written=counts[WRITTEN], skipped=skipped, failed=counts[FAILED], refresh=False)
      tqdm.write(done.line, file=sys.stderr if done.status == FAILED else sys.stdout)
      if done.status == FAILED:
        failures.append({'input': done.path, 'name': done.name, 'error': done.line.removeprefix('error: ')})
    finished = True
  finally:
    if hasattr(results, 'close'):
      results.close()  # A Ray iterator: ended while Ray still runs.
    if bar is not None:
      bar.close()
    seconds = time.perf_counter() - started
    errors = os.path.join(out_root, f'errors{suffix}.jsonl')
    if failures:
      atomic_write(errors, ''.join(json.dumps(f) + '\n' for f in failures).encode())
    elif finished and os.path.exists(errors):
      os.remove(errors)  # An earlier run's: its failures are done now, or failed again and listed above.
    atomic_write(os.path.join(out_root, f'run{suffix}.json'), json.dumps(
        {'written': counts[WRITTEN], 'skipped': skipped, 'failed': counts[FAILED], 'inputs': total + skipped,
         'finished': finished, 'seconds': round(seconds, 2), **record}, indent=1).encode())
  rate = counts[WRITTEN] / seconds if seconds > 0 else 0.0
  print(f'{counts[WRITTEN]} written, {skipped} skipped, {counts[FAILED]} failed in {seconds:.1f} s ({rate:.2f}/s)'
        + (f'; the failures are listed in {errors!r}.' if failures else '.'))
