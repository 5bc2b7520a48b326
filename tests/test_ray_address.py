"""--engine ray with a cluster address: a dead, wrong or unreachable address
is one line within a bound (CONNECT_SECONDS, 10 s; 2 s here), Ctrl-C and
SIGTERM act at once (130 / 143 with their line), and the README's cluster
recipe (`ray start --head`, then --ray-address HEAD:PORT) works against a
separately started head, with and without Ray's token authentication."""

import http.server
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip('ray')

from conftest import ROOT  # noqa: E402
from seg_bridge import engines  # noqa: E402

BOUND = 2.0  # CONNECT_SECONDS in these tests.


@pytest.fixture(scope='module')
def listeners():
  """A port with nothing behind it, an HTTP/1 server, a listener that never
  answers (its backlog accepts), and a server that closes at once."""
  closed = socket.socket()
  closed.bind(('127.0.0.1', 0))
  dead_port = closed.getsockname()[1]
  closed.close()
  http_server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler)
  threading.Thread(target=http_server.serve_forever, daemon=True).start()
  silent = socket.socket()
  silent.bind(('127.0.0.1', 0))
  silent.listen(8)
  hanging_up = socket.socket()
  hanging_up.bind(('127.0.0.1', 0))
  hanging_up.listen(8)

  def hang_up():
    while True:
      try:
        connection, _ = hanging_up.accept()
      except OSError:
        return
      connection.close()
  threading.Thread(target=hang_up, daemon=True).start()
  yield {'dead': f'127.0.0.1:{dead_port}', 'http': f'127.0.0.1:{http_server.server_address[1]}',
         'silent': f'127.0.0.1:{silent.getsockname()[1]}', 'hangs up': f'127.0.0.1:{hanging_up.getsockname()[1]}'}
  http_server.shutdown()
  silent.close()
  hanging_up.close()


@pytest.mark.parametrize('kind,phrase', [
    ('dead', 'Connection refused'),
    ('http', 'answers, but not as a Ray cluster'),
    ('silent', f'no answer within {BOUND:g} s'),
    ('hangs up', 'reset by peer|answers, but not as a Ray cluster'),
    ('unknown host', "unknown host 'no-such-host.invalid'"),
    ('no port', 'give HOST:PORT'),
    ('ray client, dead', 'Connection refused'),
    ('ipv6, dead', 'cannot reach a Ray cluster'),
])
@pytest.mark.parametrize('through', ['--ray-address', 'RAY_ADDRESS'])
def test_a_wrong_address_is_one_line_within_the_bound(listeners, monkeypatch, kind, phrase, through):
  address = {'unknown host': 'no-such-host.invalid:6379', 'no port': 'head-node',
             'ray client, dead': 'ray://' + listeners['dead'], 'ipv6, dead': '[::1]:1'}.get(kind) or listeners[kind]
  monkeypatch.setattr(engines, 'CONNECT_SECONDS', BOUND)
  if through == 'RAY_ADDRESS':
    monkeypatch.setenv('RAY_ADDRESS', address)
  started = time.monotonic()
  with pytest.raises(engines.EngineError, match=phrase) as raised:
    engines.start_ray(address if through == '--ray-address' else None)
  assert time.monotonic() - started < BOUND + 1.5
  assert '\n' not in str(raised.value) and repr(address) in str(raised.value)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.parametrize('signum,status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_act_at_once_while_an_address_does_not_answer(listeners, tmp_path, signum, status):
  from test_segment_hardening import photo
  process = subprocess.Popen([sys.executable, 'segment.py', '--engine', 'ray', '--ray-address', listeners['silent'],
                              '--prompt', 'dog', photo(tmp_path / 'a.png'), '--out', str(tmp_path / 'out')],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(5)  # Python and Ray imported; connecting (the bound is 10 s).
  process.send_signal(signum)
  sent = time.monotonic()
  out, err = process.communicate(timeout=30)
  assert time.monotonic() - sent < 3
  assert process.returncode == status, err
  assert err.strip() == 'interrupted before any image was done; nothing was written.' and not out
  assert not (tmp_path / 'out').exists()


@pytest.fixture
def head(tmp_path):
  """start(home, **env): `ray start --head` on a free port, as a separate
  cluster (its own HOME: ~/.ray/auth_token), stopped after the test."""
  started = []

  def start(home, **env):
    port = free_port()
    environment = {**os.environ, 'HOME': str(home), 'RAY_USAGE_STATS_ENABLED': '0', **env}
    subprocess.run(['ray', 'start', '--head', f'--port={port}', '--num-cpus=2', '--include-dashboard=false',
                    '--disable-usage-stats'], env=environment, check=True, capture_output=True, timeout=120)
    started.append(environment)
    return f'127.0.0.1:{port}'
  yield start
  for environment in started:
    subprocess.run(['ray', 'stop', '--force'], env=environment, capture_output=True, timeout=120)


@pytest.mark.slow  # Three Ray heads started and three runs: about two minutes.
def test_the_cluster_recipe_works_against_a_separate_head(head, tmp_path, clipseg_dir, sam2_dir):
  """The README's recipe; Ray turns token authentication on for `ray start
  --head` where ~/.ray/auth_token exists (any earlier local ray.init writes
  one), and a driver given an address sends this machine's token."""
  from test_segment_ray import options, photos
  with_token, without = tmp_path / 'with_token', tmp_path / 'without'
  (with_token / '.ray').mkdir(parents=True)
  (with_token / '.ray' / 'auth_token').write_text('a' * 32)
  without.mkdir()
  images = photos(tmp_path / 'in', 2)
  for head_home, driver_home, works in ((without, without, True), (with_token, with_token, True),
                                        (with_token, without, False)):
    address = head(head_home)
    out = tmp_path / f'out-{head_home.name}-{driver_home.name}'
    env = {k: v for k, v in os.environ.items() if not k.startswith('RAY_AUTH')}
    started = time.monotonic()
    result = subprocess.run([sys.executable, 'segment.py', str(images), '--engine', 'ray', '--ray-address', address,
                             *options(clipseg_dir, sam2_dir, out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**env, 'HOME': str(driver_home), 'HF_HUB_OFFLINE': '1',
                                              'TMPDIR': str(tmp_path)})
    if works:
      assert result.returncode == 0, result.stderr
      assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ['img0', 'img1']
      assert not list(tmp_path.glob('seg_bridge-ray-*.log'))  # A clean run keeps no Ray log.
    else:
      lines = result.stderr.strip().splitlines()
      assert result.returncode == 2 and time.monotonic() - started < engines.JOIN_SECONDS
      assert 'uses token authentication' in lines[0] and 'copy that file from the head' in lines[0], result.stderr
      assert 'Traceback' not in result.stderr


@pytest.mark.slow  # A local Ray: about half a minute.
def test_more_workers_than_inputs_start_no_idle_actors_and_print_only_the_commands_lines(tmp_path, clipseg_dir,
                                                                                          sam2_dir):
  import tempfile
  from test_segment_ray import options, photos
  images = photos(tmp_path / 'in', 1)
  scratch = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # Short: Ray's socket paths must fit in 107 bytes.
  result = subprocess.run([sys.executable, 'segment.py', str(images), '--engine', 'ray', '--workers', '1000',
                           *options(clipseg_dir, sam2_dir, tmp_path / 'out')], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, 'HF_HUB_OFFLINE': '1', 'TMPDIR': scratch})
  assert result.returncode == 0, result.stderr
  lines = (result.stdout + result.stderr).strip().splitlines()
  assert len(lines) == 2 and lines[0].endswith("out/img0'"), lines
  assert lines[1].startswith('1 written, 0 skipped, 0 failed'), lines
  assert not list(pathlib.Path(scratch).glob('seg_bridge-ray-*.log'))  # A clean run keeps no Ray log.


@pytest.mark.slow  # A local Ray: about twenty seconds.
def test_a_local_cluster_stays_up_for_the_whole_run():
  """Ray's local processes get Linux's parent-death signal when the *thread*
  that ran ray.init ends: start_ray starts a local cluster from the main thread."""
  import tempfile
  script = ('import time; from seg_bridge import engines\n'
            'ray = engines.start_ray(None)\n'
            'time.sleep(3)\n'
            '@ray.remote\n'
            'def square(x): return x * x\n'
            'print(ray.get(square.remote(7), timeout=60))\n'
            'engines.stop_ray()\n')
  result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, 'TMPDIR': tempfile.mkdtemp(prefix='ray', dir='/tmp')})
  assert result.returncode == 0 and result.stdout.strip() == '49', result.stderr
