r"""Muon's optimizer update of cpu_quick's parameters, split over the devices or not.

    python bench/muon_update.py                  # 1 and 2 CPU devices; leafwise, stacked, split; alternated
    python bench/muon_update.py --rounds 3 --out results/muon_update_cpu.json

One update of `vit_jax.training.optim.muon` for the parameters of configs/cpu_quick.py's
ViT (16 matrices in 4 shapes and a head; Adam for the rest), jitted as in
the train step, parameters and gradients replicated over a mesh of D CPU
devices. 'leafwise': optax.contrib.muon on the matrices one by one (the
project's optimizer before the split), every device orthogonalizing every
matrix; 'stacked': the matrices stacked by shape, no mesh given (still
every device all of them); 'split': stacked, and each device
orthogonalizing its share (`optim.create(config, mesh)`, what train.py
runs). Each (D, variant) in its own process, alternated round by round;
medians of the calls in milliseconds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from record import ROOT, provenance, write_record

CHILD = """
import os, sys, time
os.environ['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={sys.argv[1]}'
import jax, ml_collections, numpy as np, optax
from flax import nnx
from vit_jax import xla_flags
from vit_jax.training import optim, steps
from vit_jax.models import ViT, ViTConfig
xla_flags.use_fast_cpu_flags()
mesh = steps.make_mesh()
model = ViT(ViTConfig(patch_size=4, dim=128, depth=4, num_heads=4, mlp_dim=256, pool='mean', num_classes=10),
            rngs=nnx.Rngs(0))
params = jax.device_put(nnx.state(model, nnx.Param), steps.replicated(mesh))
grads = jax.tree.map(lambda p: 0.01 * p + 0.001, params)
config = ml_collections.ConfigDict(dict(name='muon', weight_decay=0.05, muon_rms=0.6))
tx = {'leafwise': optax.chain(optax.contrib.muon(1.0, weight_decay=0.05, weight_decay_mask=optim.decay_mask,
                                                 consistent_rms=0.6), optax.scale(-1.0)),
      'stacked': optim.create(config), 'split': optim.create(config, mesh)}[sys.argv[2]]
state = jax.jit(tx.init, out_shardings=steps.replicated(mesh))(params)
update = jax.jit(tx.update, out_shardings=steps.replicated(mesh))
jax.block_until_ready(update(grads, state, params))
times = []
for _ in range(int(sys.argv[3])):
  start = time.perf_counter()
  jax.block_until_ready(update(grads, state, params))
  times.append(time.perf_counter() - start)
print(float(np.median(times)) * 1e3)
"""


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--devices', default='1,2', help='CPU device counts, comma-separated')
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--calls', type=int, default=30)
  parser.add_argument('--out', help='a JSON file for the record')
  args = parser.parse_args()
  started = provenance()
  sides = [(int(d), variant) for d in args.devices.split(',') for variant in ('leafwise', 'stacked', 'split')]
  ms = {f'{d} devices, {variant}': [] for d, variant in sides}
  for _ in range(args.rounds):
    for d, variant in sides:
      out = subprocess.run([sys.executable, '-c', CHILD, str(d), variant, str(args.calls)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, check=True)
      ms[f'{d} devices, {variant}'].append(round(float(out.stdout.strip().splitlines()[-1]), 1))
  medians = {side: statistics.median(v) for side, v in ms.items()}
  print(json.dumps({'update_ms': ms, 'median_ms': medians}, indent=1))
  if args.out:
    write_record(args.out, started, update_ms=ms, median_ms=medians)


if __name__ == '__main__':
  main()
