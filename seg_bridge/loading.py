"""Loading models: the device, Hugging Face models, and one-sentence errors
when weights are missing."""

from __future__ import annotations

import os
import socket
import textwrap
import urllib.parse


class ModelNotFoundError(FileNotFoundError):
  """Weights are missing; the message says which and how to get them."""


def pick_device(device: str | None = None) -> str:
  """`device` if given (ValueError where torch has no such device here),
  else CUDA, then Apple MPS, then CPU."""
  import torch
  if device:
    try:
      kind = torch.device(device).type
    except RuntimeError:
      raise ValueError(f'unknown --device {device!r}; use cuda, mps or cpu.') from None
    available = {'cpu': True, 'cuda': torch.cuda.is_available(),
                 'mps': getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available()}
    if not available.get(kind, False):
      raise ValueError(f'device {device!r} is not available on this machine; use cpu, or leave --device out.')
    return device
  if torch.cuda.is_available():
    return 'cuda'
  if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
    return 'mps'
  return 'cpu'


def hub_reachable(timeout: float = 3.0) -> bool:
  """False when offline mode is set or the Hugging Face endpoint cannot be
  reached in a few seconds (instead of minutes of download retries)."""
  from huggingface_hub import constants
  if constants.HF_HUB_OFFLINE:
    return False
  if any(os.environ.get(v) for v in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY')):
    return True  # Behind a proxy a direct connection says nothing; let the download try.
  endpoint = urllib.parse.urlparse(constants.ENDPOINT)
  try:
    socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    return True
  except OSError:
    return False


def reason(error: BaseException) -> str:
  """An exception as a short phrase for a one-line message."""
  return textwrap.shorten(str(error).splitlines()[0] if str(error) else type(error).__name__, 120, placeholder=' ...')


def load_pretrained(cls, name_or_path: str, what: str):
  """cls.from_pretrained(name_or_path) from a folder, the HF cache, or a
  download; or one sentence on what to do."""
  path = os.path.expanduser(name_or_path)
  if name_or_path.startswith(('/', './', '../', '~')) and not os.path.isdir(path):
    raise ModelNotFoundError(f'{what} folder {name_or_path!r} does not exist; pass the folder of a copy saved with '
                             'save_pretrained(), or a Hugging Face name.')
  try:
    return cls.from_pretrained(path, local_files_only=True)  # A folder, or the HF cache: no network.
  except Exception as e:  # Missing, or broken: a bad config field, a truncated weights file, ...
    if os.path.isdir(path):
      raise ModelNotFoundError(f'{what} folder {name_or_path!r} cannot be loaded ({reason(e)}); it must hold a '
                               'copy saved with save_pretrained().') from None
    if not isinstance(e, (OSError, ValueError)):  # In the HF cache, but broken.
      raise ModelNotFoundError(f'the cached copy of {what} {name_or_path!r} cannot be loaded ({reason(e)}); delete it '
                               '(hf cache delete) and download it again.') from None
  if not hub_reachable():
    raise ModelNotFoundError(
        f'{what} {name_or_path!r} is neither a local folder nor in the Hugging Face cache, and the Hub cannot be '
        'reached; run once with network access (it is then cached), or pass the path of a copy saved with '
        'save_pretrained().')
  try:
    return cls.from_pretrained(path)
  except Exception as e:
    raise ModelNotFoundError(f'{what} {name_or_path!r} could not be loaded ({reason(e)}); check the name, or '
                             'pass the path of a copy saved with save_pretrained().') from None
