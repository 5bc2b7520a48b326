"""Losses by name, chosen with `config.loss`:

    loss = losses.get('softmax_xent')
    per_example = loss(logits, targets)   # logits [B, K], targets [B, K] (soft labels) -> [B]

A new loss is one function here and one line in LOSSES.
"""

from __future__ import annotations

import optax


def softmax_xent(logits, targets):  # [B, K], [B, K] -> [B]
  """Cross-entropy of the softmax against (smoothed, mixed) label distributions."""
  return optax.softmax_cross_entropy(logits, targets)


def sigmoid_xent(logits, targets):  # [B, K], [B, K] -> [B]
  """Independent binary cross-entropy per class, summed (big_vision's sigmoid_xent)."""
  return optax.sigmoid_binary_cross_entropy(logits, targets).sum(-1)


LOSSES = {'softmax_xent': softmax_xent, 'sigmoid_xent': sigmoid_xent}


def get(name: str):
  if name not in LOSSES:
    raise ValueError(f'unknown loss {name!r}; choose one of {", ".join(LOSSES)}.')
  return LOSSES[name]


def objective(loss):
  """The training objective of a classifier under `loss`:
  objective(model, images, targets, rngs) -> (mean loss, logits [B, K])."""
  def apply(model, images, targets, rngs):
    logits = model(images, train=True, rngs=rngs)
    return loss(logits, targets).mean(), logits
  return apply
