r"""Fine-tune a pretrained ViT-B/16 (timm or Google checkpoint) on CIFAR-10.

    python train.py --config configs/finetune.py --config.init.weights=ViT-B_16.npz \
        --workdir workdirs/finetune

The weights cannot be downloaded from here: fetch them where there is
network, e.g. Google's `ViT-B_16.npz` (ImageNet-21k, from the
vision_transformer repository's storage) or a timm ViT-B/16 `.safetensors`
(`vit_base_patch16_224.augreg_in21k` on the Hugging Face Hub), and give the
path. The position embedding is resampled to the grid and the head replaced
by a new 10-class one (the log says so). Recipe of the ViT paper (Dosovitskiy
et al. 2021, appendix B.1.1): images upsampled to 224, SGD with momentum
0.9, no weight decay, gradient clipping at 1, lr 0.01 per 512 images with
500 warmup steps and cosine decay, 10,000 steps at batch 512, crop + flip.
The paper reports 98.1-99.0% for ViT-B/16 fine-tuned on CIFAR-10 (98.13% in
its Table 2 for the ImageNet-21k model at 384; AugReg models ~99%).

Streamed (config.data.pipeline='stream'): 60,000 images at 224x224 would be
9 GB of uint8 on the device, so Grain workers upsample each batch instead,
with an Inception-style random-resized crop and flip (as big_vision's
fine-tuning); evaluation sees the whole image. The source must allow random
access: TFDS cifar10 (array_record), an extracted folder, or ArrayRecord
shards (python -m vit_jax.data.arrayrecord folder:../shared/data/cifar10-jpeg.tar.gz OUT).
Reaches: not yet measured here (no GPU, no network for the weights).
"""

from configs import deit_ti, model_section


def get_config():
  config = deit_ti.get_config()
  config.data.image_size = 224
  config.data.pipeline = 'stream'
  config.data.stream_crop = 'random_resized'  # The workers crop and flip.
  config.data.eval_crop_fraction = 1.0  # Upsampled CIFAR: the whole image.
  config.model = model_section('deit_base', patch_size=16, stem='patch', drop_path=0.0, dropout=0.0, dtype='bfloat16')
  config.init = dict(weights='ViT-B_16.npz')
  deit_ti.crop_and_flip_only(config)
  config.batch_size = 512
  config.eval_batch_size = 500
  config.total_epochs = 0.0
  config.total_steps = 10_000
  config.optim = dict(name='sgd', lr=0.01, lr_base_batch_size=512, weight_decay=0.0, momentum=0.9, nesterov=False,
                      grad_clip_norm=1.0, ema_decay=0.0)
  config.schedule = dict(decay_type='cosine', warmup_epochs=0.0, warmup_steps=500, min_lr=0.0)
  config.eval_every_epochs = 5
  return config
