"""Loading models: the device, Hugging Face models, and one-sentence errors
when weights are missing."""

from __future__ import annotations


class ModelNotFoundError(FileNotFoundError):
  """Weights are missing; the message says which and how to get them."""


def pick_device(device: str | None = None) -> str:
  """`device` if given, else CUDA, then Apple MPS, then CPU."""
  import torch
  if device:
    return device
  if torch.cuda.is_available():
    return 'cuda'
  if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
    return 'mps'
  return 'cpu'


def load_pretrained(cls, name_or_path: str, what: str):
  """cls.from_pretrained(name_or_path), or one sentence on what to do."""
  try:
    return cls.from_pretrained(name_or_path)
  except (OSError, ValueError) as e:
    raise ModelNotFoundError(
        f'{what} {name_or_path!r} is neither a local folder nor in the Hugging Face cache, and could not be '
        f'downloaded ({str(e).splitlines()[0][:100]}); run once with network access, or pass the path of a '
        'copy saved with save_pretrained().') from None
