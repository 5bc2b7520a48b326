r"""Train-step throughput of DeiT-Ti/4 (32x32, batch 256): vit_jax vs timm.

    python bench/train_throughput.py                       # CPU, float32
    python bench/train_throughput.py --dtype bfloat16 --compile --out results/throughput_gpu.json

Each side runs in its own process (their CPU thread pools must not fight) on
the same machine, same shape, same batch:
  vit_jax  the library's own jitted train step (vit_jax.steps): crop + flip on
           the device, forward, backward, AdamW, parameters donated;
  timm     timm's VisionTransformer of identical shape, torch AdamW, the batch
           already in memory (no augmentation: in timm's favour);
           --compile wraps the model in torch.compile, --dtype bfloat16 uses
           autocast.
Prints images/s for each and the ratio; --out also writes them as JSON with
command, commit, device and date.
"""

import argparse
import json
import subprocess
import sys
import time

from record import ROOT, provenance, write_record
SHAPE = dict(image_size=32, patch_size=4, dim=192, depth=12, num_heads=3, num_classes=10)


def bench_jax(args) -> dict:
  import jax
  import numpy as np
  import optax

  sys.path.insert(0, ROOT)
  from configs import deit_ti
  from vit_jax import optim, steps
  from vit_jax.models import ViT, ViTConfig
  from flax import nnx

  config = deit_ti.get_config()
  config.batch_size = args.batch_size
  for key in ('randaugment_layers', 'random_erasing', 'mixup_alpha', 'cutmix_alpha'):
    config.aug[key] = 0
  num_train = args.batch_size * 8
  mesh = steps.make_mesh()
  rng = np.random.default_rng(0)
  images = steps.put_replicated(rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8), mesh)
  labels = steps.put_replicated(rng.integers(0, 10, (num_train,), dtype=np.int32), mesh)
  schedule = optax.constant_schedule(1e-3)
  tx = optim.adamw(schedule, weight_decay=0.05)
  model = ViT(ViTConfig(**SHAPE, dtype=args.dtype), rngs=nnx.Rngs(0))
  graphdef, state = steps.init_state(model, tx, num_train=num_train, seed=0, use_ema=False, mesh=mesh)
  train_step = steps.make_train_step(graphdef, tx, schedule, config, mesh=mesh, num_classes=10,
                                     num_train=num_train)
  for _ in range(args.warmup):
    state, metrics = train_step(state, images, labels)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = train_step(state, images, labels)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  return {'images_per_sec': args.steps * args.batch_size / seconds, 'device': str(jax.devices()[0].device_kind),
          'jax': jax.__version__, 'loss': float(metrics['loss'])}


def bench_timm(args) -> dict:
  import torch
  from timm.models.vision_transformer import VisionTransformer

  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  model = VisionTransformer(img_size=SHAPE['image_size'], patch_size=SHAPE['patch_size'], embed_dim=SHAPE['dim'],
                            depth=SHAPE['depth'], num_heads=SHAPE['num_heads'],
                            num_classes=SHAPE['num_classes']).to(device)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
  forward = torch.compile(model) if args.compile else model
  x = torch.randn(args.batch_size, 3, 32, 32, device=device)
  y = torch.randint(0, 10, (args.batch_size,), device=device)
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.dtype == 'bfloat16')

  def step():
    optimizer.zero_grad(set_to_none=True)
    with autocast:
      loss = torch.nn.functional.cross_entropy(forward(x), y)
    loss.backward()
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--impl', choices=('jax', 'timm'), help='Run one side only (used internally).')
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32')
  parser.add_argument('--compile', action='store_true', help='torch.compile the timm model.')
  parser.add_argument('--out', help='Also write the results to this JSON file.')
  args = parser.parse_args()
  if args.impl:
    print(json.dumps((bench_jax if args.impl == 'jax' else bench_timm)(args)))
    return
  started = provenance()
  results = {}
  for impl in ('jax', 'timm'):
    cmd = [sys.executable, __file__, '--impl', impl, *sys.argv[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
      sys.exit(f'{impl} benchmark failed:\n{proc.stderr[-2000:]}')
    results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f'{impl:>5}: {results[impl]["images_per_sec"]:8.1f} images/s  ({results[impl]["device"]})', flush=True)
  ratio = results['jax']['images_per_sec'] / results['timm']['images_per_sec']
  print(f'ratio vit_jax / timm: {ratio:.2f}x')
  if args.out:
    write_record(args.out, started, model='DeiT-Ti/4 (32x32)', batch_size=args.batch_size, dtype=args.dtype,
                 torch_compile=args.compile, results=results, ratio=ratio)

if __name__ == '__main__':
  main()
