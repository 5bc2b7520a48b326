r"""configs/cpu_quick.py's recipe in PyTorch: the reference the JAX main job races.

    python bench/cpu_recipe_torch.py --out /tmp/torch_run.json            # 600 s, eager
    python bench/cpu_recipe_torch.py --compile --out /tmp/torch_run.json  # with torch.compile
    python bench/cpu_race.py                                               # both sides, alternated

What a user who knows PyTorch would write for the same recipe, on the same
data and split: timm's VisionTransformer of the same shape (dim 128, depth
4, 4 heads, MLP 256, patch 4, mean pooling, no class token); Muon on every
matrix (the blocks' and the head's; q, k and v apart), its steps scaled to an RMS of `--muon-rms` times the
learning rate (rms sqrt(max(A, B)), as optax's consistent_rms; 0.2 is AdamW's RMS, the
recipe takes 0.6) and its Newton-Schulz iteration in float32
(torch.optim.Muon's bfloat16 is slow on AVX2 CPUs), Adam on the rest;
linear warmup and cosine decay to `--min-lr`; flips (no crop), label smoothing;
the first share of the steps on 16x16 images (antialiased resize; timm
resizes the position embedding); validation on the same 5,000 held-out
images every `--eval-every-epochs`, the best one tested once with flips.
The step count is planned to fill `--seconds` of training (compilation,
steps and evaluations), with vit_jax.training.budget's planner, replanned every 50
steps and at each evaluation, as train.py does. Prints one JSON line;
--out writes it too. The recipe's values are written out here, as a
PyTorch user would; tests/test_cpu_race.py checks
them against configs/cpu_quick.py (importing it here would bring JAX into a
torch process).
"""

import argparse
import copy
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from record import CIFAR10_JPEG, ROOT, provenance, time_of, write_record

sys.path.insert(0, ROOT)
from vit_jax import data  # noqa: E402  (pure numpy / Python: no JAX is imported)
from vit_jax.training import budget

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CROP_PADDING, LABEL_SMOOTHING, LOW_RES_SIZE = 0, 0.1, 16
REPLAN_EVERY_STEPS = 50  # train.py replans at its logged steps: every config.log_every_steps.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
  """Muon's quintic Newton-Schulz iteration, in float32: ~ U V^T of g = U S V^T."""
  a, b, c = NS_COEFFICIENTS
  x = g.T if g.shape[0] > g.shape[1] else g
  x = x / x.norm().clamp(min=1e-7)
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + torch.addmm(gram, gram, gram, beta=b, alpha=c) @ x
  return x.T if g.shape[0] > g.shape[1] else x


class Muon(torch.optim.Optimizer):
  """torch.optim.Muon's update (Nesterov momentum, orthogonalised, decoupled decay) in float32, scaled to the RMS
  rms * lr (rms 0.2: AdamW's, torch.optim.Muon's 'match_rms_adamw'), as vit_jax.training.optim.muon. A group's `parts`
  splits each matrix into that many along its output axis, orthogonalized apart (a fused qkv weight: 3)."""

  def __init__(self, params, lr: float, weight_decay: float, rms: float, ns_steps: int, momentum: float = 0.95):
    super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, rms=rms, ns_steps=ns_steps,
                                  parts=1))

  @torch.no_grad()
  def step(self):
    for group in self.param_groups:
      for p in group['params']:
        buf = self.state[p].setdefault('momentum', torch.zeros_like(p))
        buf.lerp_(p.grad, 1 - group['momentum'])
        parts = p.grad.lerp(buf, group['momentum']).chunk(group['parts'], dim=0)  # [out, in] weights.
        update = torch.cat([orthogonalize(g, group['ns_steps']) * math.sqrt(max(g.shape)) for g in parts])
        p.mul_(1 - group['lr'] * group['weight_decay'])
        p.add_(update, alpha=-group['lr'] * group['rms'])


def build(args):
  from timm.models.vision_transformer import VisionTransformer
  torch.manual_seed(args.seed)
  model = VisionTransformer(img_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=4, mlp_ratio=2.0,
                            num_classes=10, class_token=False, global_pool='avg', dynamic_img_size=True)
  return model, muon_and_adam(model, args.lr, args.weight_decay, args.muon_rms, args.ns_steps)


def muon_and_adam(model, lr: float, weight_decay: float, muon_rms: float = 0.2,
                   ns_steps: int = 5) -> list[torch.optim.Optimizer]:
  """As vit_jax.training.optim.muon (optax.contrib.muon): Muon with weight decay on every matrix (the blocks' and the
  head's; each qkv weight as q, k and v), Adam without decay on the rest (optax's adam_weight_decay=0)."""
  qkv = [block.attn.qkv.weight for block in model.blocks]
  matrices = [p for p in model.parameters() if p.ndim == 2 and all(p is not w for w in qkv)]
  others = [p for p in model.parameters() if p.ndim != 2]
  return [Muon([dict(params=matrices), dict(params=qkv, parts=3)], lr=lr, weight_decay=weight_decay, rms=muon_rms,
               ns_steps=ns_steps),
          torch.optim.Adam(others, lr=lr)]


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:  # [B, H, W, 3] uint8 -> [B, 3, H, W] float32
  x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
  return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
  """Zero-padded random crop (CROP_PADDING px; none at 0) and flip of uint8 [B, H, W, 3] (a new tensor)."""
  b, h, w, _ = images.shape
  if CROP_PADDING:
    padded = F.pad(images, (0, 0) + (CROP_PADDING,) * 4)
    dy, dx = (torch.randint(0, 2 * CROP_PADDING + 1, (b,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    images = padded[torch.arange(b)[:, None, None], rows, cols]
  flip = torch.rand(b, generator=generator) < 0.5
  return torch.where(flip[:, None, None, None], images.flip(2), images)


def predict(model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
  model.eval()
  preds = []
  with torch.inference_mode():
    for start in range(0, len(images), batch_size):
      x = normalize(torch.from_numpy(images[start:start + batch_size]))
      preds.append(((model(x) + model(x.flip(3))) / 2).argmax(-1).numpy())
  model.train()
  return np.concatenate(preds)


def arguments(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default=CIFAR10_JPEG)
  parser.add_argument('--val-size', type=int, default=5000, help='Training images held out (vit_jax.data.split_off).')
  parser.add_argument('--seconds', type=float, default=600.0)
  parser.add_argument('--steps', type=int, default=0, help='A fixed step count instead of --seconds.')
  parser.add_argument('--compile', action='store_true', help='torch.compile the model (counted in the budget).')
  parser.add_argument('--batch-size', type=int, default=128)
  parser.add_argument('--lr', type=float, default=2e-3)
  parser.add_argument('--weight-decay', type=float, default=0.05)
  parser.add_argument('--muon-rms', type=float, default=0.6, help="Muon's update RMS per unit of learning rate.")
  parser.add_argument('--ns-steps', type=int, default=5, help='Newton-Schulz iterations.')
  parser.add_argument('--warmup-epochs', type=float, default=0.3)
  parser.add_argument('--min-lr', type=float, default=1e-5, help='Where the cosine ends.')
  parser.add_argument('--low-res-fraction', type=float, default=0.6)
  parser.add_argument('--eval-every-epochs', type=int, default=4)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out')
  return parser.parse_args(argv)


def main():
  args = arguments()
  started_record = provenance()
  splits = data.load(f'folder:{args.data}', ('train', 'test'))
  train, val = data.split_off(splits['train'], args.val_size)
  images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels).long()
  steps_per_epoch = len(train) // args.batch_size
  warmup = round(args.warmup_epochs * steps_per_epoch)
  model, optimizers = build(args)
  forward = torch.compile(model) if args.compile else model
  generator = torch.Generator().manual_seed(args.seed)
  perm = torch.randperm(len(train), generator=generator)

  def train_step(step: int, total: int, low_res: bool) -> float:
    nonlocal perm
    if step and step % steps_per_epoch == 0:
      perm = torch.randperm(len(train), generator=generator)
    index = perm[(step % steps_per_epoch) * args.batch_size:][:args.batch_size]
    x = normalize(augment(images[index], generator))
    if low_res:
      x = F.interpolate(x, size=(LOW_RES_SIZE,) * 2, mode='bilinear', antialias=True, align_corners=False)
    progress = (step - warmup) / max(total - warmup, 1)
    cosine = args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    lr = args.lr * step / warmup if step < warmup else cosine
    loss = F.cross_entropy(forward(x), labels[index], label_smoothing=LABEL_SMOOTHING)
    for optimizer in optimizers:
      optimizer.zero_grad(set_to_none=True)
      for group in optimizer.param_groups:
        group['lr'] = lr
    loss.backward()
    for optimizer in optimizers:
      optimizer.step()
    return float(loss.detach())

  def full_size_probe(step: int) -> float:
    """Seconds of a full-size step (median of 5 after one), the run's state restored after."""
    saved = copy.deepcopy((model.state_dict(), [o.state_dict() for o in optimizers], generator.get_state()))
    times = [time_of(lambda: train_step(step, 10**9, low_res=False)) for _ in range(6)]
    model.load_state_dict(saved[0])
    for optimizer, state in zip(optimizers, saved[1]):
      optimizer.load_state_dict(state)
    generator.set_state(saved[2])
    return float(np.median(times[1:]))

  def evaluates(step: int) -> bool:
    return step % steps_per_epoch == 0 and (step // steps_per_epoch) % args.eval_every_epochs == 0

  started = time.perf_counter()
  total, plan = args.steps or 10**9, None  # plan: a budget.Plan once the calibration steps are timed.
  times = {True: [], False: []}  # Step seconds by stage (low resolution or not) since the last plan.
  best, best_state, history, step = -1.0, None, [], 0
  while step < total:
    switch = plan.low_res_steps() if plan else budget.low_res_steps(args.low_res_fraction, total)
    low_res = step < switch
    t = time.perf_counter()
    loss = train_step(step, total, low_res)
    times[low_res].append(time.perf_counter() - t)
    step += 1
    if not args.steps and step == budget.CALIBRATION_STEPS:
      low = float(np.median(times[True][1:])) if args.low_res_fraction else 0.0
      full = full_size_probe(step) if args.low_res_fraction else float(np.median(times[False][1:]))
      plan = budget.Plan(args.seconds, total, step_seconds=full, low_res_fraction=args.low_res_fraction,
                         low_res_step_seconds=low, eval_seconds=time_of(lambda: predict(model, val.images)),
                         checkpoint_seconds=0.0)
      times = {True: [], False: []}
    replanning = plan is not None and step < total and (
        step == budget.CALIBRATION_STEPS or evaluates(step) or step % REPLAN_EVERY_STEPS == 0)
    if step == total or evaluates(step):
      t = time.perf_counter()
      accuracy = float((predict(model, val.images) == val.labels).mean())
      if replanning:
        plan.eval_seconds = time.perf_counter() - t
      history.append(dict(step=step, val_accuracy=accuracy, loss=loss, seconds=time.perf_counter() - started))
      print(json.dumps(history[-1]), file=sys.stderr)
      if accuracy > best:
        best, best_state = accuracy, copy.deepcopy(model.state_dict())
    if replanning:  # With the step times measured since the last plan.
      plan.low_res_step_seconds = float(np.median(times[True])) if times[True] else plan.low_res_step_seconds
      plan.step_seconds = float(np.median(times[False])) if times[False] else plan.step_seconds
      total = plan.replan(step=step, elapsed=time.perf_counter() - started, evaluates=evaluates,
                          checkpoints=lambda s: False)
      times = {True: [], False: []}
  train_seconds = time.perf_counter() - started
  model.load_state_dict(best_state)
  test_accuracy = float((predict(model, splits['test'].images) == splits['test'].labels).mean())
  result = dict(side='pytorch' + (' + torch.compile' if args.compile else ''), test_accuracy=test_accuracy,
                val_accuracy=best, steps=step, epochs=step / steps_per_epoch, train_seconds=train_seconds,
                low_res_step_seconds=plan and plan.low_res_step_seconds, step_seconds=plan and plan.step_seconds,
                eval_seconds=plan and plan.eval_seconds,
                history=history, threads=torch.get_num_threads(),
                torch=torch.__version__, args=vars(args))
  print(json.dumps(result))
  if args.out:
    write_record(args.out, started_record, **result)


if __name__ == '__main__':
  main()
