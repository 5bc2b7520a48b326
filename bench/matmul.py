r"""Matmul throughput of the DeiT-Ti/4 training shapes, JAX (XLA) vs PyTorch.

    python bench/matmul.py            # both, each in its own process
    XLA_FLAGS=--xla_cpu_use_onednn=true python bench/matmul.py

Explains bench/train_throughput.py on a CPU: the train step is matmul-bound,
so the two frameworks' dense kernels set the ratio. Shapes are those of one
batch of 256 images x 65 tokens through DeiT-Ti's layers (float32).
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


def main():
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
