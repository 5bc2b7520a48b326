"""Downloads end: a server that trickles or never stops is cut off in time and
size, malformed URLs are one line, and SAM's weights are fetched once on first
use (progress, cache, SHA-256), from a server on loopback."""

import hashlib
import http.server
import threading
import time

import pytest

from vit_jax import download, images
from vit_jax.images import ImageError


class Server:
  """A loopback HTTP server whose paths behave as the test says; counts requests."""

  def __init__(self, routes):
    self.routes, self.requests, self.stopping = routes, [], threading.Event()
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_GET(self):
        server.requests.append(self.path)
        server.routes[self.path](self, server.stopping)

      def log_message(self, *args):
        pass

    self.http = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    self.http.daemon_threads = True
    self.url = f'http://127.0.0.1:{self.http.server_address[1]}'
    threading.Thread(target=self.http.serve_forever, daemon=True).start()

  def close(self):
    self.stopping.set()
    self.http.shutdown()
    self.http.server_close()


def body(content: bytes, length: int | None = None):
  def send(handler, stopping):
    handler.send_response(200)
    handler.send_header('Content-Length', str(len(content) if length is None else length))
    handler.end_headers()
    handler.wfile.write(content)
  return send


def trickle(every: float, length: int | None = None):
  """One byte every `every` seconds, until the test ends (bounded: 30 s)."""
  def send(handler, stopping):
    handler.send_response(200)
    if length is not None:
      handler.send_header('Content-Length', str(length))
    handler.end_headers()
    deadline = time.monotonic() + 30
    while not stopping.wait(every) and time.monotonic() < deadline:
      try:
        handler.wfile.write(b'x')
        handler.wfile.flush()
      except OSError:
        return
  return send


def endless(handler, stopping):
  handler.send_response(200)
  handler.end_headers()
  chunk = b'y' * 65536
  for _ in range(2000):  # At most 128 MB, far beyond the limit the test sets.
    if stopping.is_set():
      return
    try:
      handler.wfile.write(chunk)
    except OSError:
      return


@pytest.fixture
def server():
  servers = []

  def make(routes):
    servers.append(Server(routes))
    return servers[-1]
  yield make
  for s in servers:
    s.close()


# (case, route, max_bytes, max_seconds, a phrase of the error)
ENDLESS_CASES = [
    ('a byte every 0.3 s, no length', trickle(0.3), 10_000, 1.5, 'not complete after 1.5 s'),
    ('a byte every 0.3 s, a length', trickle(0.3, length=5000), 10_000, 1.5, 'not complete after 1.5 s'),
    ('a byte every 0.3 s, a length above the limit', trickle(0.3, length=50_000), 10_000, 30, 'more than the 10,000'),
    ('more bytes than allowed, no length', endless, 1_000_000, 30, 'more than the 1,000,000 bytes allowed'),
    ('fewer bytes than its length', body(b'z' * 100, length=1000), 10_000, 30, 'closed after 100 of 1,000 bytes'),
]


@pytest.mark.parametrize('case,route,max_bytes,max_seconds,phrase', ENDLESS_CASES, ids=[c[0] for c in ENDLESS_CASES])
def test_a_download_is_bounded_in_time_and_size(server, case, route, max_bytes, max_seconds, phrase):
  url = server({'/x.jpg': route}).url + '/x.jpg'
  started = time.monotonic()
  with pytest.raises(download.DownloadError) as raised:
    download.fetch(url, max_bytes=max_bytes, max_seconds=max_seconds)
  assert time.monotonic() - started < max_seconds + 3  # Bounded, not per read.
  assert phrase in str(raised.value) and '\n' not in str(raised.value)


MALFORMED = ['http://[::1', 'http://', 'http://exa mple.com/x.jpg', 'http://127.0.0.1:99999/x.jpg',
             'http://127.0.0.1:port/x.jpg', 'https://[::1]:1/x.jpg', 'http://127.0.0.1:1/x.jpg', 'http://a\nb/c.jpg']


@pytest.mark.parametrize('url', MALFORMED)
def test_a_malformed_or_unreachable_url_is_one_line(url):
  with pytest.raises(ImageError) as raised:
    images.load_image(url)
  message = str(raised.value)
  assert message.startswith(f'{url!r}: could not download it') and '\n' not in message, message


def test_a_trickling_server_does_not_hold_the_images_after_it(server, tmp_path, clipseg_dir, sam2_dir, capsys,
                                                              monkeypatch):
  import segment
  from test_segment_hardening import photo
  monkeypatch.setattr(images, 'MAX_DOWNLOAD_SECONDS', 1.0)
  slow = server({'/slow.jpg': trickle(0.2)}).url + '/slow.jpg'
  good = photo(tmp_path / 'good.png')
  out = tmp_path / 'out'
  started = time.monotonic()
  status = segment.main(['--prompt', 'dog', '--out', str(out), '--finder-model', clipseg_dir, '--sam2-model',
                         sam2_dir, '--device', 'cpu', slow, 'http://[::1', good])
  err = capsys.readouterr().err
  assert status == 1 and time.monotonic() - started < 60
  errors = [line for line in err.splitlines() if line.startswith('error: ')]
  assert len(errors) == 2 and 'Traceback' not in err
  assert errors[0] == f"error: {slow!r}: not complete after 1 s (1 bytes); the server is too slow or never ends." \
      or 'not complete after 1 s' in errors[0]
  assert errors[1].startswith("error: 'http://[::1': could not download it")
  assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith('.')) == ['good']


# ----------------------------------------------------------- SAM on first use

@pytest.fixture
def sam_mirror(server, tmp_path, monkeypatch):
  """A mirror serving a small SAM checkpoint as sam_vit_b_01ec64.pth, whose
  SHA-256 is pinned as the official one's; torch's cache in tmp_path."""
  torch = pytest.importorskip('torch')
  from seg_bridge.maskers import sam
  from seg_tiny import tiny_sam
  weights = tmp_path / 'tiny_sam.pth'
  torch.save(tiny_sam().state_dict(), weights)
  content = weights.read_bytes()
  routes = {'/sam_vit_b_01ec64.pth': body(content)}
  mirror = server(routes)
  monkeypatch.setenv(sam.MIRROR, mirror.url)
  monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
  monkeypatch.setitem(sam.SAM_CHECKPOINTS, 'vit_b', (sam.SAM_CHECKPOINTS['vit_b'][0],
                                                      hashlib.sha256(content).hexdigest()))
  import segment_anything
  monkeypatch.setitem(segment_anything.sam_model_registry, 'vit_b', lambda checkpoint=None: tiny_sam(seed=1))
  return mirror, routes, tmp_path / 'torch' / 'hub' / 'checkpoints' / 'sam_vit_b_01ec64.pth', content


def test_sam_weights_are_downloaded_once_then_reused(sam_mirror, tmp_path, clipseg_dir, capsys):
  import segment
  from test_segment_hardening import photo
  mirror, _, cached, content = sam_mirror
  args = ['--prompt', 'dog', '--finder-model', clipseg_dir, '--device', 'cpu', photo(tmp_path / 'dog.png')]
  assert segment.main([*args, '--out', str(tmp_path / 'a')]) == 0
  err = capsys.readouterr().err
  assert 'Downloading the SAM vit_b checkpoint (once)' in err and 'B/s]' in err  # And its progress bar.
  assert cached.read_bytes() == content and mirror.requests == ['/sam_vit_b_01ec64.pth']
  assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name]  # No temporary file left.
  assert segment.main([*args, '--out', str(tmp_path / 'b')]) == 0
  assert 'Downloading' not in capsys.readouterr().err and len(mirror.requests) == 1  # From the cache.
  record = (tmp_path / 'b' / 'dog' / 'result.json').read_text()
  assert str(cached) in record  # The settings name the weights used.


@pytest.mark.parametrize('served,phrase', [
    (lambda content: body(content[:-1] + b'!'), 'the download is damaged or not the expected file'),
    (lambda content: body(content[:1000], length=len(content)), 'the connection closed after 1,000 of'),
    (None, 'HTTP 404'),
])
def test_a_bad_sam_download_is_refused_and_nothing_is_cached(sam_mirror, tmp_path, clipseg_dir, capsys, served,
                                                            phrase):
  import segment
  from test_segment_hardening import photo
  _, routes, cached, content = sam_mirror
  if served is None:
    routes.clear()
    routes['/sam_vit_b_01ec64.pth'] = lambda handler, stopping: handler.send_error(404)
  else:
    routes['/sam_vit_b_01ec64.pth'] = served(content)
  status = segment.main(['--prompt', 'dog', '--finder-model', clipseg_dir, '--device', 'cpu', '--out',
                         str(tmp_path / 'out'), photo(tmp_path / 'dog.png')])
  lines = capsys.readouterr().err.strip().splitlines()
  assert status == 2 and lines[-1].startswith('error: the SAM vit_b checkpoint is not in ') and phrase in lines[-1]
  assert lines[-1].endswith('put sam_vit_b_01ec64.pth there, or pass --sam-checkpoint PATH.')
  left = sorted(p.name for p in cached.parent.iterdir()) if cached.parent.exists() else []
  assert left == (['sam_vit_b_01ec64.pth.part'] if 'closed after' in phrase else [])  # Cut off: kept to resume.
  assert not (tmp_path / 'out').exists()


def test_offline_the_sam_download_is_one_line(sam_mirror, monkeypatch):
  from seg_bridge.loading import ModelNotFoundError
  from seg_bridge.maskers import sam
  monkeypatch.setenv(sam.MIRROR, 'http://127.0.0.1:1')  # Nothing listens: as offline.
  with pytest.raises(ModelNotFoundError, match=r"cannot be downloaded \(.*refused.*\); put sam_vit_b_01ec64.pth"):
    sam.official_checkpoint('vit_b')


# ------------------------------------------------- resumed, and slow servers

def ranged(content: bytes, stall_after: int | None = None):
  """Serves `content`, honouring 'Range: bytes=N-' (206); with `stall_after`,
  sends that many bytes and then nothing until the test ends."""
  def send(handler, stopping):
    start = int(handler.headers['Range'][6:-1]) if handler.headers.get('Range') else 0
    handler.send_response(206 if start else 200)
    if start:
      handler.send_header('Content-Range', f'bytes {start}-{len(content) - 1}/{len(content)}')
    handler.send_header('Content-Length', str(len(content) - start))
    handler.end_headers()
    handler.wfile.write(content[start:stall_after])
    handler.wfile.flush()
    if stall_after is not None:
      stopping.wait(60)
  return send


@pytest.mark.parametrize('resumable', [True, False])
def test_a_download_killed_midway_is_resumed_or_restarted_and_leaves_nothing(server, tmp_path, resumable):
  import os
  import signal
  import subprocess
  import sys
  content = os.urandom(300_000)
  routes = {'/w.pth': ranged(content, stall_after=100_000)}
  mirror = server(routes)
  target = tmp_path / 'w.pth'
  process = subprocess.Popen([sys.executable, '-c', 'import sys; from vit_jax import download; '
                              'download.fetch_file(sys.argv[1], sys.argv[2], progress=False)',
                              f'{mirror.url}/w.pth', str(target)])
  part = tmp_path / 'w.pth.part'
  deadline = time.monotonic() + 60
  while not (part.exists() and part.stat().st_size == 100_000) and time.monotonic() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=30)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['w.pth.part'] and part.stat().st_size == 100_000
  routes['/w.pth'] = ranged(content) if resumable else body(content)  # body() ignores Range: a full 200.
  headers = []
  handler = routes['/w.pth']
  routes['/w.pth'] = lambda h, stopping: headers.append(h.headers.get('Range')) or handler(h, stopping)
  download.fetch_file(f'{mirror.url}/w.pth', str(target), sha256=hashlib.sha256(content).hexdigest(), progress=False)
  assert headers == ['bytes=100000-'] and target.read_bytes() == content
  assert sorted(p.name for p in tmp_path.iterdir()) == ['w.pth']


def test_old_temporary_files_of_a_download_are_removed(server, tmp_path):
  mirror = server({'/w.pth': body(b'weights')})
  (tmp_path / '.w.pthab12cd.tmp').write_bytes(b'left by an older version, killed')
  download.fetch_file(f'{mirror.url}/w.pth', str(tmp_path / 'w.pth'), progress=False)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['w.pth']


@pytest.mark.parametrize('route', [trickle(0.2), trickle(0.2, length=100_000), ranged(b'q' * 100_000, 2_000)])
def test_a_server_slower_than_the_minimum_rate_is_cut_off_within_its_window(server, tmp_path, monkeypatch, route):
  monkeypatch.setattr(download, 'RATE_WINDOW', 1.0)
  monkeypatch.setattr(download, 'READ_TIMEOUT', 3.0)  # A stall (no byte at all) ends at one read's time-out.
  mirror = server({'/slow': route})
  started = time.monotonic()
  with pytest.raises(download.DownloadError, match=r"slower than 0.977 KiB/s over 1 s|could not download it \(timed"):
    download.fetch_file(f'{mirror.url}/slow', str(tmp_path / 'slow.bin'), min_rate=1000, progress=False)
  assert time.monotonic() - started < 1.0 + download.READ_TIMEOUT
