"""Data parallelism: 8 simulated CPU devices train exactly like 1 device on
the same global batch (jit over a device mesh shards the batch)."""

import json
import os
import subprocess
import sys

from conftest import ROOT

SCRIPT = """
import json, sys
sys.path.insert(0, 'tests')
import jax
from conftest import tiny_config
from vit_jax import train
config = tiny_config(total_epochs=1, batch_size=80, eval_batch_size=40, log_every_steps=1,
                     **{'model.dropout': 0.1, 'model.drop_path': 0.1, 'aug.randaugment_layers': 2,
                        'aug.mixup_alpha': 0.8, 'aug.cutmix_alpha': 1.0, 'aug.random_erasing': 0.25})
report = train.train_and_evaluate(config, sys.argv[1])
print(json.dumps({'devices': jax.device_count(), 'report': report}))
"""


def run(devices, workdir):
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}', 'JAX_PLATFORMS': 'cpu'}
  out = subprocess.run([sys.executable, '-c', SCRIPT, str(workdir)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result['devices'] == devices
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [r['loss'] for r in records if 'loss' in r], result['report']


def test_eight_devices_give_the_same_losses_as_one(tmp_path):
  losses_1, report_1 = run(1, tmp_path / 'one')
  losses_8, report_8 = run(8, tmp_path / 'eight')
  assert len(losses_1) == len(losses_8) == 12
  for a, b in zip(losses_1, losses_8):
    assert abs(a - b) < 1e-4 * max(1.0, abs(a)), (losses_1, losses_8)
  assert report_8['devices'] == 8 and report_1['devices'] == 1
  assert abs(report_1['test_accuracy'] - report_8['test_accuracy']) <= 1 / 300
