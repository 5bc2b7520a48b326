"""What a resumed run must find as it left it: its settings and its data.

    check_settings(config, workdir, allow_changes, step)  # config.json against config
    previous = read_data(workdir)                          # data.json: the listings and the validation images
    feed = feeds.open_feed(config, mesh, keep_val=kept_validation(previous, config))
    check_data(previous, feed, workdir, allow_changes, step)
    write_data(workdir, config, feed)

A run resumed over other settings or other data is refused in one line
naming what changed; `--resume_with_changes` goes on, keeps the earlier
record beside the new one (config_until_step_N.json, data_until_step_N.json)
and holds out the same validation images (those still there), so none of
them is trained on.
"""

from __future__ import annotations

import json
import os

from vit_jax.files import atomic_write
from vit_jax.training.validate import ConfigError, config_changes

DATA_FILE = 'data.json'


def check_settings(config, workdir: str, allow_changes: bool, step: int) -> None:
  """Refuses, naming the fields, settings that differ from those the run in
  `workdir` was started with, unless `allow_changes`; then config.json keeps
  the new settings and config_until_step_<step>.json the old ones."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    stored = f.read()
  try:
    changes = config_changes(stored, config)
  except ValueError:  # Unreadable: the checkpoint itself is checked against the model.
    return
  if not changes:
    return
  listed = ', '.join(f'{field} {old!r} -> {new!r}' for field, old, new in changes[:4])
  listed += f' and {len(changes) - 4} more' if len(changes) > 4 else ''
  if not allow_changes:
    raise ConfigError(f'{workdir!r} holds a run started with other settings ({listed}); use another --workdir, or '
                      'pass --resume_with_changes to go on with the new ones.')
  print(f'Resuming with changed settings: {listed}.')
  atomic_write(os.path.join(workdir, f'config_until_step_{step}.json'), stored.encode())


def read_data(workdir: str) -> dict | None:
  """The data record of the run in `workdir` (None: none, or unreadable)."""
  try:
    with open(os.path.join(workdir, DATA_FILE)) as f:
      record = json.load(f)
    return record if isinstance(record, dict) and isinstance(record.get('listings'), dict) else None
  except (OSError, ValueError):
    return None


def kept_validation(previous: dict | None, config) -> list[str] | None:
  """The validation images a resumed run holds out again: those it started
  with, unless config.data.val_size changed since."""
  if previous is None or previous.get('val_size') != config.data.get('val_size', 0):
    return None
  return previous.get('val_keys')


def check_data(previous: dict | None, feed, workdir: str, allow_changes: bool, step: int) -> None:
  """Refuses to resume where a split lists other images than when the run
  started, unless `allow_changes`."""
  if previous is None:  # A run from before data records: nothing to compare.
    return
  changed = [f'{split} {old.get("images")} -> {feed.listings[split]["images"]} images'
             for split, old in previous['listings'].items()
             if split in feed.listings and old != feed.listings[split]]
  if not changed:
    return
  listed = ', '.join(changed) + ' (the listing differs)'
  if not allow_changes:
    raise ConfigError(f'{workdir!r} holds a run started on other data ({listed}); resuming would change its '
                      'training and validation images. Restore the data, use another --workdir, or pass '
                      '--resume_with_changes to go on with it.')
  print(f'Resuming with changed data: {listed}; the {feed.num_val} validation images still there stay out of '
        'training.')
  atomic_write(os.path.join(workdir, f'data_until_step_{step}.json'), json.dumps(previous).encode())


def write_data(workdir: str, config, feed) -> None:
  """Records the splits' listings and the validation images for the next resume."""
  record = {'listings': feed.listings, 'num_train': feed.num_train, 'val_size': config.data.get('val_size', 0),
            'val_keys': list(feed.val_keys)}
  atomic_write(os.path.join(workdir, DATA_FILE), json.dumps(record).encode())
