"""bench/gpu_campaign.py --smoke: every part of the GPU campaign for a few steps on CPU, so the one command is
known to work before a GPU is lent."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip('timm')


@pytest.mark.slow  # Six throughput processes (torch.compile among them) and a tiny training: a few minutes.
def test_the_campaign_runs_every_part_and_writes_one_summary(tmp_path):
  result = subprocess.run([sys.executable, 'bench/gpu_campaign.py', '--smoke', '--out', str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1500)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((tmp_path / 'summary.json').read_text())
  assert summary['smoke'] and summary['commit'] and summary['date']
  for name in ('ti4', 's4'):
    sides = json.dumps(summary['throughput'][name])
    assert all(side in sides for side in ('vit_jax', 'timm', 'timm-compile')), sides
  deit = summary['deit_ti']
  assert deit['curve'] and all(0 <= p['val_accuracy'] <= 1 for p in deit['curve'])
  assert set(deit['seconds_to_val_accuracy']) == {'80%', '85%', '90%'} and 0 <= deit['test_accuracy'] <= 1
  device = json.loads((tmp_path / 'device.json').read_text())
  assert device['devices'] and device['device_kind']
