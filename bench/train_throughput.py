r"""Train-step throughput of a ViT (DeiT-Ti/4 by default): vit_jax vs timm, eager and compiled.

    python bench/train_throughput.py --out results/throughput_cpu.json     # CPU, float32
    python bench/train_throughput.py --dtype bfloat16 --out results/throughput_gpu.json
    python bench/train_throughput.py --dim 128 --depth 4 --heads 4 --mlp-dim 256   # configs/cpu_quick.py's shape

Three sides, each timed in its own process (their CPU thread pools must not
share one), in rounds that alternate them (A B C A B C ...); the medians count:
  vit_jax       the library's own jitted train step (vit_jax.training.steps), with
                train.py's XLA options (vit_jax.xla_flags): crop + flip on the
                device, forward, backward, AdamW, parameters donated;
  timm          timm's VisionTransformer of identical shape, torch AdamW, the
                batch already in memory (no augmentation: in timm's favour);
  timm-compile  the same with torch.compile (the faster PyTorch path, where it is).
--dtype bfloat16 is bf16 compute (vit_jax's model dtype; torch autocast).
Also reports the model's FLOPs per image and the fraction of the machine's
peak (one 4096x4096 float32 matmul, in numpy) that each side reaches.
Prints images/s and the ratios; --out writes them as JSON with command,
commit, device and date.
"""

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

from record import ROOT, provenance, time_of, write_record

SIDES = ('vit_jax', 'timm', 'timm-compile')


def shape(args) -> dict:
  return dict(image_size=32, patch_size=args.patch, dim=args.dim, depth=args.depth, num_heads=args.heads,
              mlp_dim=args.mlp_dim or 4 * args.dim, num_classes=10)


def train_flops_per_image(s: dict) -> float:
  """Multiply-adds x 2 of the forward pass, x 3 for forward + backward."""
  n, d, m = (s['image_size'] // s['patch_size']) ** 2 + (s['pool'] == 'cls'), s['dim'], s['mlp_dim']
  block = 2 * n * (3 * d * d + d * d + 2 * d * m) + 2 * 2 * n * n * d  # qkv, proj, mlp; q·k and attention·v.
  embed = 2 * (n - 1) * 3 * s['patch_size'] ** 2 * d
  return 3 * (embed + s['depth'] * block + 2 * d * s['num_classes'])


def bench_jax(args) -> dict:
  sys.path.insert(0, ROOT)
  from vit_jax import xla_flags
  xla_flags.use_fast_cpu_flags()
  import jax
  import numpy as np
  from flax import nnx

  from configs import deit_ti
  from vit_jax.training import losses, optim, steps
  from vit_jax.data import augment
  from vit_jax.models import ViT, ViTConfig

  config = deit_ti.get_config()
  for key in ('randaugment_layers', 'random_erasing', 'mixup_alpha', 'cutmix_alpha'):
    config.aug[key] = 0
  num_train = args.batch_size * 8
  mesh = steps.make_mesh()
  rng = np.random.default_rng(0)
  images = steps.put_replicated(rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8), mesh)
  labels = steps.put_replicated(rng.integers(0, 10, (num_train,), dtype=np.int32), mesh)
  tx = optim.create({'name': args.optimizer, 'weight_decay': 0.05})
  model = ViT(ViTConfig(**shape(args), pool=args.pool, dtype=args.dtype), rngs=nnx.Rngs(0))
  graphdef, state = steps.init_state(model, tx, num_train=num_train, seed=0, use_ema=False, mesh=mesh)
  augment_batch = functools.partial(augment.augment_batch, aug=config.aug, num_classes=10, mean=config.data.mean,
                                    std=config.data.std)
  train_step = steps.make_train_step(graphdef, tx, lambda step, total: 1e-3, losses.objective(losses.softmax_xent),
                                     augment_batch, batch_size=args.batch_size, seed=0, mesh=mesh, num_train=num_train,
                                     image_size=args.image_size)
  for _ in range(args.warmup):
    state, metrics = train_step(state, images, labels)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = train_step(state, images, labels)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  return {'images_per_sec': args.steps * args.batch_size / seconds, 'device': str(jax.devices()[0].device_kind),
          'jax': jax.__version__, 'xla_flags': os.environ.get('XLA_FLAGS', ''), 'loss': float(metrics['loss'])}


def bench_timm(args, compile_: bool) -> dict:
  import torch
  from timm.models.vision_transformer import VisionTransformer

  s = shape(args)
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  model = VisionTransformer(img_size=s['image_size'], patch_size=s['patch_size'], embed_dim=s['dim'],
                            depth=s['depth'], num_heads=s['num_heads'], mlp_ratio=s['mlp_dim'] / s['dim'],
                            num_classes=s['num_classes'], class_token=args.pool == 'cls',
                            global_pool='token' if args.pool == 'cls' else 'avg',
                            dynamic_img_size=args.image_size != s['image_size']).to(device)
  if args.optimizer == 'muon':  # As vit_jax.training.optim.muon: Muon on the matrices, AdamW on the rest.
    from cpu_recipe_torch import muon_and_adam
    optimizers = muon_and_adam(model, lr=1e-3, weight_decay=0.05)
  else:
    optimizers = [torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)]
  forward = torch.compile(model) if compile_ else model
  x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
  y = torch.randint(0, 10, (args.batch_size,), device=device)
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.dtype == 'bfloat16')

  def step():
    for optimizer in optimizers:
      optimizer.zero_grad(set_to_none=True)
    with autocast:
      loss = torch.nn.functional.cross_entropy(forward(x), y)
    loss.backward()
    for optimizer in optimizers:
      optimizer.step()
    return loss

  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  for _ in range(args.warmup):
    step()
  sync()
  start = time.perf_counter()
  for _ in range(args.steps):
    loss = step()
  sync()
  seconds = time.perf_counter() - start
  name = torch.cuda.get_device_name() if device == 'cuda' else 'cpu'
  return {'images_per_sec': args.steps * args.batch_size / seconds, 'device': name, 'torch': torch.__version__,
          'threads': torch.get_num_threads(), 'loss': float(loss)}


def peak_matmul_flops(n: int = 4096, repeats: int = 5) -> float:
  """FLOP/s of one [n, n] @ [n, n] float32 matmul in numpy (its BLAS), best of `repeats`."""
  import numpy as np
  a = np.ones((n, n), np.float32)
  a @ a
  best = min(time_of(lambda: a @ a) for _ in range(repeats))
  return 2 * n**3 / best


def run_side(side: str, args) -> dict:
  options = ('batch_size', 'steps', 'warmup', 'dtype', 'patch', 'dim', 'depth', 'heads', 'mlp_dim', 'pool',
             'optimizer', 'image_size')
  cmd = [sys.executable, __file__, '--side', side,
         *[a for name in options for a in (f'--{name.replace("_", "-")}', str(getattr(args, name)))]]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode:
    sys.exit(f'{side} benchmark failed:\n{proc.stderr[-2000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--side', choices=(*SIDES, 'peak'), help='Run one side once (used internally).')
  parser.add_argument('--sides', default=','.join(SIDES), help='Comma-separated sides to compare.')
  parser.add_argument('--rounds', type=int, default=3, help='Rounds of alternating sides; medians are reported.')
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32')
  parser.add_argument('--patch', type=int, default=4)
  parser.add_argument('--dim', type=int, default=192)
  parser.add_argument('--depth', type=int, default=12)
  parser.add_argument('--heads', type=int, default=3)
  parser.add_argument('--mlp-dim', type=int, default=0, help='0: 4 x dim.')
  parser.add_argument('--pool', choices=('cls', 'mean'), default='cls', help="'mean': mean pooling (cpu_quick's).")
  parser.add_argument('--optimizer', choices=('adamw', 'muon'), default='adamw',
                      help='muon: Muon on the matrices, AdamW on the rest (both sides).')
  parser.add_argument('--image-size', type=int, default=32,
                      help='The input resolution: 16 is cpu_quick\'s low-resolution stage (vit_jax resizes in '
                           'its step, timm gets 16x16 images).')
  parser.add_argument('--out', help='Also write the results to this JSON file.')
  args = parser.parse_args()
  if args.side:
    runners = {'vit_jax': bench_jax, 'timm': lambda a: bench_timm(a, False), 'timm-compile': lambda a: bench_timm(a, True),
               'peak': lambda a: {'flops': peak_matmul_flops()}}
    print(json.dumps(runners[args.side](args)))
    return
  sides = args.sides.split(',')
  unknown = sorted(set(sides) - set(SIDES))
  if unknown:
    parser.error(f'unknown sides {unknown}; choose from {", ".join(SIDES)}.')
  started = provenance()
  runs = {side: [] for side in sides}
  for round_ in range(args.rounds):
    for side in sides:
      runs[side].append(run_side(side, args))
      print(f'round {round_ + 1}: {side:>12} {runs[side][-1]["images_per_sec"]:8.1f} images/s', flush=True)
  peak = run_side('peak', args)['flops']
  flops = train_flops_per_image({**shape(args), 'image_size': args.image_size, 'pool': args.pool})
  medians = {side: statistics.median(r['images_per_sec'] for r in results) for side, results in runs.items()}
  for side, rate in medians.items():
    print(f'{side:>12}: {rate:8.1f} images/s (median of {args.rounds}), {rate * flops / 1e9:6.1f} GFLOP/s, '
          f'{rate * flops / peak:5.1%} of the {peak / 1e9:.0f} GFLOP/s matmul peak')
  torch_sides = [s for s in medians if s != 'vit_jax']
  ratios = {}
  if 'vit_jax' in medians and torch_sides:
    fastest = max(torch_sides, key=medians.get)
    ratios = {f'vit_jax / {s}': medians['vit_jax'] / medians[s] for s in torch_sides}
    print(f'vit_jax / fastest PyTorch path ({fastest}): {medians["vit_jax"] / medians[fastest]:.2f}x')
  if args.out:
    write_record(args.out, started, model=shape(args), batch_size=args.batch_size, dtype=args.dtype,
                 optimizer=args.optimizer, pool=args.pool, image_size=args.image_size,
                 rounds=args.rounds, train_flops_per_image=flops, peak_matmul_flops=peak,
                 median_images_per_sec=medians, ratios=ratios, runs=runs)


if __name__ == '__main__':
  main()
