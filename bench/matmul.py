r"""Matmul throughput of the DeiT-Ti/4 training shapes, JAX (XLA) vs PyTorch.

    python bench/matmul.py            # both, each in its own process
    python bench/matmul.py dense      # XLA: cpu_quick's qkv layer on [B, N, D] vs [B * N, D]
    XLA_FLAGS=--xla_cpu_use_onednn=true python bench/matmul.py

Explains bench/train_throughput.py on a CPU: the train step is matmul-bound,
so the two frameworks' dense kernels set the ratio. Shapes are those of one
batch of 256 images x 65 tokens through DeiT-Ti's layers (float32).

`dense` is the minimal reproducer of what vit_jax.models.Linear works
around: XLA's CPU dot is slower on a 3-D [B, N, D] operand than on the same
numbers as 2-D [B * N, D], forward and (more) for the weight gradient, whose
dot then contracts two dimensions.
"""

import json
import subprocess
import sys
import time

SHAPES = [  # (M, K, N) of an [M, K] @ [K, N] product, and where it occurs.
    (16640, 192, 768, 'mlp fc1'),
    (16640, 768, 192, 'mlp fc2'),
    (16640, 192, 576, 'qkv'),
    (192, 16640, 768, 'fc1 weight gradient'),
]


def run(impl: str, repeats: int = 10) -> dict:
  rates = {}
  for m, k, n, name in SHAPES:
    if impl == 'jax':
      import jax
      import jax.numpy as jnp
      a, b = jnp.ones((m, k)), jnp.ones((k, n))
      matmul = jax.jit(lambda a, b: a @ b)
      wait = lambda r: r.block_until_ready()
    else:
      import torch
      a, b = torch.ones(m, k), torch.ones(k, n)
      matmul, wait = (lambda a, b: a @ b), (lambda r: r)
    wait(matmul(a, b))
    start = time.perf_counter()
    for _ in range(repeats):
      result = matmul(a, b)
    wait(result)
    rates[f'{m}x{k}x{n} ({name})'] = 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9
  return rates


def dense_layouts(b: int = 256, n: int = 64, d: int = 128, out: int = 384, repeats: int = 10) -> dict:
  """Milliseconds of x @ w and of its gradients (w.r.t. x and w), x as [b, n, d] or [b * n, d]."""
  import jax
  import jax.numpy as jnp
  x, w = jnp.ones((b, n, d)), jnp.ones((d, out))
  layouts = {'3-D [B, N, D]': lambda x, w: x @ w, '2-D [B * N, D]': lambda x, w: x.reshape(-1, d) @ w}
  result = {}
  for name, dense in layouts.items():
    for what, fn in (('forward', dense), ('forward + backward', jax.grad(lambda x, w: jnp.sum(dense(x, w)), (0, 1)))):
      fn = jax.jit(fn)
      jax.block_until_ready(fn(x, w))
      start = time.perf_counter()
      for _ in range(repeats):
        r = fn(x, w)
      jax.block_until_ready(r)
      result[f'{name} {what}'] = 1000 * (time.perf_counter() - start) / repeats
  return result


def main():
  if sys.argv[1:] == ['dense']:
    for name, ms in dense_layouts().items():
      print(f'{name:40} {ms:7.1f} ms')
    return
  if len(sys.argv) > 1:
    print(json.dumps(run(sys.argv[1])))
    return
  results = {impl: json.loads(subprocess.run([sys.executable, __file__, impl], capture_output=True, text=True,
                                             check=True).stdout) for impl in ('jax', 'torch')}
  print(f'{"shape":38} {"jax GFLOP/s":>12} {"torch GFLOP/s":>14}')
  for shape in results['jax']:
    print(f'{shape:38} {results["jax"][shape]:12.0f} {results["torch"][shape]:14.0f}')


if __name__ == '__main__':
  main()
