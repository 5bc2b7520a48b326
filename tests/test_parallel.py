"""Data parallelism: 8 simulated CPU devices, and 2 processes of 2 devices
joined by jax.distributed, train exactly like 1 device on the same global
batch (jit over a device mesh shards the batch)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = """
import json, sys, time
sys.path.insert(0, 'tests')
import jax
workdir, process_id, num_processes, port, overrides = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
    json.loads(sys.argv[5])
if num_processes > 1:
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(f'localhost:{port}', num_processes, process_id)
from conftest import tiny_config
from vit_jax.training import loop as train
rate = 1 + overrides.pop('clock_rate_per_process', 0) * process_id  # Hosts whose clocks disagree.
config = tiny_config(**{'total_epochs': 1, 'batch_size': 80, 'eval_batch_size': 40, 'log_every_steps': 1,
                        'model.dropout': 0.1, 'model.drop_path': 0.1, 'aug.randaugment_layers': 2,
                        'aug.mixup_alpha': 0.8, 'aug.cutmix_alpha': 1.0, 'aug.random_erasing': 0.25, **overrides})
report = train.train_and_evaluate(config, workdir, clock=lambda: time.perf_counter() * rate)
print(json.dumps({'devices': jax.device_count(), 'report': report}))
"""


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def start(workdir, local_devices, num_processes=1, overrides=None):
  """Starts a run of `num_processes` processes of `local_devices` devices
  each; `overrides`: config fields changed from the test's."""
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={local_devices}',
         'JAX_PLATFORMS': 'cpu'}
  port = str(free_port())
  procs = [subprocess.Popen([sys.executable, '-c', SCRIPT, str(workdir), str(i), str(num_processes), port,
                             json.dumps(overrides or {})],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(num_processes)]
  return workdir, local_devices * num_processes, procs


def finish(started):
  """(losses, report) of a started run, once it is done."""
  workdir, devices, procs = started
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  result = json.loads(outputs[0][0].strip().splitlines()[-1])
  assert result['devices'] == devices
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [r['loss'] for r in records if 'loss' in r], result['report']


def assert_same_run(reference, other):
  (losses_a, report_a), (losses_b, report_b) = reference, other
  assert len(losses_a) == len(losses_b) == 11  # 900 training images (100 held out), batches of 80.
  for a, b in zip(losses_a, losses_b):
    assert abs(a - b) < 1e-4 * max(1.0, abs(a)), (losses_a, losses_b)
  assert abs(report_a['test_accuracy'] - report_b['test_accuracy']) <= 1 / 300


@pytest.mark.slow  # Four trainings in their own processes, two of them a two-host cluster: minutes.
def test_eight_devices_and_two_hosts_give_the_same_losses_as_one_device(tmp_path):
  runs = [start(tmp_path / 'one', local_devices=1), start(tmp_path / 'eight', local_devices=8)]
  one, eight = map(finish, runs)  # Side by side: much of each is compiling, on one core.
  assert eight[1]['devices'] == 8 and one[1]['devices'] == 1
  assert_same_run(one, eight)
  two_hosts = finish(start(tmp_path / 'two_hosts', local_devices=2, num_processes=2))
  assert two_hosts[1]['devices'] == 4
  assert_same_run(one, two_hosts)


@pytest.mark.slow  # Two trainings in their own processes.
def test_muon_split_over_eight_devices_trains_like_one_device(tmp_path):
  # Each device orthogonalizes a share of the matrices (vit_jax.training.optim.stacked_matrices); uneven shares here.
  muon = {'optim.name': 'muon', 'optim.lr': 2e-3}
  runs = [start(tmp_path / 'one', local_devices=1, overrides=muon), start(tmp_path / 'eight', local_devices=8,
                                                                           overrides=muon)]
  assert_same_run(*map(finish, runs))


@pytest.mark.slow  # A two-host cluster, in its own processes.
def test_two_hosts_follow_one_plan_of_a_time_budget(tmp_path):
  workdir, _, procs = start(tmp_path / 'budget', local_devices=1, num_processes=2,
                            overrides={'total_epochs': 0.0, 'total_seconds': 100.0, 'log_every_steps': 2,
                                       'clock_rate_per_process': 0.5})
  outputs = [p.communicate(timeout=600) for p in procs]  # Hosts that planned apart would hang or fail here.
  assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
  reports = [json.loads(out.strip().splitlines()[-1])['report'] for out, _ in outputs]
  assert reports[0]['steps'] == reports[1]['steps'] == reports[0]['plan']['total_steps'] > 20
