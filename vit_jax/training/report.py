"""What a run leaves for a person: metrics log, accuracy report and pictures.

    metrics.jsonl            one JSON object per logged step or evaluation
    report.json              test accuracy, per-class accuracy, confusion matrix
    curves.png               loss, train and validation accuracy over training
    confusion_matrix.png     on the whole test split
    predictions.png          sample test images with predicted / true class

Every file is written to a temporary name and renamed, so none is ever half
written.
"""

from __future__ import annotations

import io
import json
import os

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from vit_jax.files import atomic_write  # noqa: E402


class MetricsLog:
  """metrics.jsonl: appended one line per record; `truncate(step)` drops
  records past a step, so a resumed run does not log a step twice."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, 'metrics.jsonl')

  def read(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      lines = f.read().splitlines()
    records = []
    for line in lines:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:  # A line cut by a crash: drop it.
        continue
      if isinstance(record, dict) and isinstance(record.get('step'), int):  # Not some other writer's line.
        records.append(record)
    return records

  def truncate(self, step: int) -> None:
    kept = [r for r in self.read() if r['step'] <= step]
    atomic_write(self.path, ''.join(json.dumps(r) + '\n' for r in kept).encode())

  def write(self, record: dict) -> None:
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
  """[K, K] counts: row = true class, column = predicted class."""
  return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def write_report(workdir: str, *, labels, preds, images, class_names, records, extra: dict) -> dict:
  """Writes report.json and the three pictures; returns the report."""
  k = len(class_names)
  cm = confusion_matrix(labels, preds, k)
  per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
  report = {
      **extra,
      'test_accuracy': float((labels == preds).mean()),
      'num_test_images': int(len(labels)),
      'per_class_accuracy': {name: float(a) for name, a in zip(class_names, per_class)},
      'confusion_matrix': cm.tolist(),
  }
  atomic_write(os.path.join(workdir, 'report.json'), (json.dumps(report, indent=2) + '\n').encode())
  _plot_curves(os.path.join(workdir, 'curves.png'), records)
  _plot_confusion(os.path.join(workdir, 'confusion_matrix.png'), cm, class_names)
  _plot_predictions(os.path.join(workdir, 'predictions.png'), images, labels, preds, class_names)
  return report


def _save_figure(fig, path: str) -> None:
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
  plt.close(fig)
  atomic_write(path, buffer.getvalue())


def _plot_curves(path, records):
  train = [r for r in records if 'loss' in r]
  evals = [r for r in records if 'val_accuracy' in r]
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  ax_loss.plot([r['epoch'] for r in train], [r['loss'] for r in train], label='train loss (augmented)')
  ax_loss.set(xlabel='epoch', ylabel='cross-entropy', title='Loss')
  ax_loss.legend()
  ax_acc.plot([r['epoch'] for r in train], [r['train_accuracy'] for r in train], alpha=0.6,
              label='train (vs. mixed targets)')
  ax_acc.plot([r['epoch'] for r in evals], [r['val_accuracy'] for r in evals], 'o-', label='validation')
  ax_acc.set(xlabel='epoch', ylabel='accuracy', title='Accuracy', ylim=(0, 1))
  ax_acc.legend()
  _save_figure(fig, path)


def _plot_confusion(path, cm, class_names):
  k = len(class_names)
  fig, ax = plt.subplots(figsize=(1.2 + 0.55 * k, 1.0 + 0.5 * k))
  ax.imshow(cm, cmap='Blues')
  if k <= 20:
    for i in range(k):
      for j in range(k):
        ax.text(j, i, int(cm[i, j]), ha='center', va='center', fontsize=7,
                color='white' if cm[i, j] > cm.max() / 2 else 'black')
    ax.set_xticks(range(k), class_names, rotation=90)
    ax.set_yticks(range(k), class_names)
  ax.set(xlabel='predicted', ylabel='true', title=f'Confusion matrix ({cm.sum()} test images)')
  _save_figure(fig, path)


def _plot_predictions(path, images, labels, preds, class_names, count=32):
  rng = np.random.default_rng(0)
  chosen = rng.choice(len(images), size=min(count, len(images)), replace=False)  # `images`: the first test images.
  cols = 8
  rows = -(-len(chosen) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.7), squeeze=False)
  for ax in axes.ravel():
    ax.axis('off')
  for ax, i in zip(axes.ravel(), chosen):
    ax.imshow(images[i])
    ok = labels[i] == preds[i]
    ax.set_title(f'{class_names[preds[i]]}' + ('' if ok else f'\n(true: {class_names[labels[i]]})'),
                 fontsize=7, color='green' if ok else 'red')
  _save_figure(fig, path)
