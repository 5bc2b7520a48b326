r"""Where the time of one ViT train step goes on this machine, op by op.

    python bench/profile_step.py                          # configs/cpu_quick.py's model, batch 128
    python bench/profile_step.py --dim 192 --depth 12 --heads 3 --mlp-dim 768 --batch-size 256   # DeiT-Ti/4
    python bench/profile_step.py --stem resnet --stem-width 16 --calls 5    # a hybrid: which convolutions cost

Traces forward + backward of the model (jax.profiler, XLA's per-op trace
events on CPU), sums each XLA op's time over a few calls, and prints the
top ops with the HLO they run (dot shapes, convolution, reductions), then
the share of all op time by kind. What the numbers showed is written down
in results/profile_cpu.md.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

from record import ROOT


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch-size', type=int, default=128)
  parser.add_argument('--dim', type=int, default=128)
  parser.add_argument('--depth', type=int, default=4)
  parser.add_argument('--heads', type=int, default=4)
  parser.add_argument('--mlp-dim', type=int, default=256)
  parser.add_argument('--patch', type=int, default=4)
  parser.add_argument('--stem', default='patch', help="the ViT's stem: patch, conv or resnet")
  parser.add_argument('--stem-width', type=int, default=64, help='channels of the conv / ResNet stem')
  parser.add_argument('--calls', type=int, default=3)
  parser.add_argument('--top', type=int, default=20)
  args = parser.parse_args()
  sys.path.insert(0, ROOT)
  from vit_jax import xla_flags
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_enable_xprof_traceme=true').strip()
  xla_flags.use_fast_cpu_flags()
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from vit_jax.models import ViT, ViTConfig

  cfg = ViTConfig(patch_size=args.patch, stem=args.stem, stem_width=args.stem_width, dim=args.dim, depth=args.depth,
                  num_heads=args.heads, mlp_dim=args.mlp_dim, pool='mean')
  graphdef, params, rest = nnx.split(ViT(cfg, rngs=nnx.Rngs(0)), nnx.Param, ...)  # rest: the stems' BatchNorm stats.
  images = jnp.asarray(np.random.default_rng(0).normal(size=(args.batch_size, 32, 32, 3)).astype(np.float32))
  # The stems' BatchNorm updates its statistics in the step: they are arguments of grad too, to be its to update.
  grad = jax.jit(lambda p, x: jax.grad(lambda pr: jnp.sum(nnx.merge(graphdef, *pr)(x, train=True) ** 2))((p, rest)))
  jax.block_until_ready(grad(params, images))
  start = time.perf_counter()
  for _ in range(args.calls):
    jax.block_until_ready(grad(params, images))
  wall = (time.perf_counter() - start) / args.calls
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(args.calls):
        jax.block_until_ready(grad(params, images))
    with gzip.open(glob.glob(f'{trace_dir}/**/*.trace.json.gz', recursive=True)[0]) as f:
      events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  hlo = grad.lower(params, images).compile().as_text()
  op_ms = collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and re.fullmatch(r'[\w-]+(\.\d+)?', e['name']) and e['name'] in hlo:
      op_ms[e['name']] += e['dur'] / 1000 / args.calls
  total = sum(op_ms.values())
  print(f'forward + backward, batch {args.batch_size}: {1000 * wall:.0f} ms wall; {total:.0f} ms in XLA ops')
  kinds, top = collections.Counter(), {name for name, _ in op_ms.most_common(args.top)}
  for name, ms in op_ms.most_common():
    call = re.search(rf'%?{re.escape(name)} = (\S+) .*?calls=%?([\w.\-]+)', hlo)
    body = hlo[hlo.find(f'{call.group(2)} ') if call else 0:][:3000] if call else ''
    kind = ('dot' if ' dot(' in body else 'convolution' if 'convolution(' in body else 'reduce' if 'reduce(' in body
            else 'elementwise/copy')
    kinds[kind] += ms
    if name in top:
      dot = re.search(r'dot\(.*?\), (lhs_batch_dims=\{[\d,]*\}, )?lhs_contracting_dims=\{[\d,]*\}', body)
      print(f'{ms:7.1f} ms  {name:28} {call.group(1) if call else "":28} {kind:16} {dot.group(0)[:60] if dot else ""}')
  print('by kind: ' + ', '.join(f'{k} {ms:.0f} ms ({ms / total:.0%})' for k, ms in kinds.most_common()))


if __name__ == '__main__':
  main()
