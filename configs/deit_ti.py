r"""DeiT-Ti/4 on CIFAR-10 from scratch: the full DeiT recipe, for one GPU.

    python train.py --config configs/deit_ti.py --workdir workdirs/deit_ti

Recipe of the earlier write-up E (90.9% at 252 of 300 epochs there): patch 4
(64 tokens), dim 192, depth 12, 3 heads (5.36M parameters); AdamW lr
5e-4 x batch/512, weight decay 0.05, 5 warmup epochs then cosine, batch 1024,
300 epochs; RandAugment(2, 9), crop + flip, Mixup 0.8 / CutMix 1.0, random
erasing 0.25, label smoothing 0.1, DropPath 0.1; bf16 compute.

Reaches: not yet measured here (no GPU was lent to the session that wrote
it); fill in accuracy, time, device, commit and date from a real run.
The data: CIFAR-10 from a local copy, else downloaded once (the 'cifar10'
source, vit_jax.data.cifar10); or --config.data.source=folder:PATH.
"""

import ml_collections

from configs import model_section


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = dict(
      source='cifar10',  # A local copy, else downloaded once (vit_jax.data.cifar10); or 'folder:PATH', 'tfds:NAME'.
      data_dir='',  # TFDS data directory; '': TFDS's default (~/tensorflow_datasets).
      image_size=32,
      val_size=5000,  # Held out of the training split for evaluations and the best checkpoint; 0: none.
      mean=(0.4914, 0.4822, 0.4465),
      std=(0.2470, 0.2435, 0.2616),
      # 'memory': decoded once onto the devices; 'stream': read by Grain workers every epoch (data that does
      # not fit: vit_jax.data.stream); 'auto': memory while the decoded training split fits in memory_limit_gb.
      pipeline='auto',
      memory_limit_gb=8.0,
      workers=-1,  # Streaming: decoding processes; -1: one per core but one (at most 8), 0: in this process.
      buffer=2,  # Streaming: batches each worker prepares ahead.
      # Streaming: 'resize': the workers resize whole images to image_size and the device crops and flips
      # (config.aug), as for data in memory; 'random_resized': the workers take an Inception-style crop and
      # flip (ImageNet's recipe), and evaluation resizes the short side to image_size / eval_crop_fraction
      # and takes the centre.
      stream_crop='resize',
      eval_crop_fraction=0.875,
      max_bad_fraction=0.001,  # Streaming: unreadable training images (replaced, counted) allowed; 0: none.
  )
  # A name from vit_jax.models.PRESETS and the fields it changes (ViTConfig; stem: 'patch', 'conv' or 'resnet');
  # the other fields are unset (the preset's) and can be set too: --config.model.stem_width=32.
  config.model = model_section('deit_tiny', patch_size=4, stem='patch', drop_path=0.1, dropout=0.0, dtype='bfloat16')
  config.loss = 'softmax_xent'  # vit_jax.training.losses.LOSSES
  # Distillation from a trained teacher (vit_jax.training.distill): '' trains without one.
  config.distill = dict(teacher_workdir='', kind='hard', temperature=1.0, alpha=0.5)
  # Fine-tuning: weights to start from (vit_jax.convert.load_file: timm .safetensors/.pth, Google ViT .npz).
  config.init = dict(weights='')

  config.aug = dict(
      crop_padding=4,
      flip=True,
      randaugment_layers=2,
      randaugment_magnitude=9.0,
      randaugment_magnitude_std=0.5,
      random_erasing=0.25,
      label_smoothing=0.1,
      mixup_alpha=0.8,
      cutmix_alpha=1.0,
      mix_switch_prob=0.5,  # Chance that a batch gets CutMix instead of Mixup.
      mix_prob=1.0,
  )

  config.batch_size = 1024
  config.eval_batch_size = 1000
  config.total_epochs = 300.0  # May be fractional.
  config.total_steps = 0  # Or the number of steps;
  config.total_seconds = 0.0  # or a wall-clock budget (steps planned from the measured speed). Give exactly one.
  config.optim = dict(
      name='adamw',  # vit_jax.training.optim.OPTIMIZERS: 'adamw', 'sgd' (momentum, nesterov) or 'muon'.
      lr=5e-4,  # Per lr_base_batch_size images; the peak is lr * batch_size / lr_base_batch_size.
      lr_base_batch_size=512,
      weight_decay=0.05,
      b1=0.9,
      b2=0.999,
      grad_clip_norm=0.0,  # 0: no clipping.
      ema_decay=0.0,  # 0: no EMA of the weights; e.g. 0.9998 evaluates an EMA.
  )
  config.schedule = dict(decay_type='cosine', warmup_epochs=5.0, warmup_steps=0, min_lr=1e-5)

  # Progressive resizing: the first `fraction` of the steps train on images resized to `image_size`
  # (fewer tokens: faster steps); the position embedding is resized with them.
  config.low_res_stage = dict(image_size=16, fraction=0.0)

  config.log_every_steps = 50
  config.eval_every_epochs = 10  # On the validation split; the test split once, at the end.
  config.test_time_flip = False  # Average the logits of each image and its mirror image.
  config.checkpoint_every_epochs = 1
  config.progress_bar = True
  # Where JAX runs on the CPU, train.py splits it into this many XLA devices, and each batch between them as
  # between GPUs (0: JAX's default, one, or XLA_FLAGS's --xla_force_host_platform_device_count).
  config.cpu_devices = 0
  return config


def crop_and_flip_only(config: ml_collections.ConfigDict) -> None:
  """Turns off the DeiT extras (RandAugment, erasing, Mixup/CutMix, label smoothing): crop + flip stay."""
  for key in ('randaugment_layers', 'random_erasing', 'mixup_alpha', 'cutmix_alpha', 'label_smoothing'):
    config.aug[key] = 0
