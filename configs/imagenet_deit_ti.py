r"""DeiT-Ti/16 on ImageNet-1k at 224 px, streamed: the DeiT paper's recipe.

    python -m vit_jax.data.arrayrecord folder:/data/imagenet /data/imagenet-ar --splits train,val
    python train.py --config configs/imagenet_deit_ti.py --workdir workdirs/imagenet_deit_ti \
        --config.data.source=arrayrecord:/data/imagenet-ar

The data: a folder (or uncompressed .tar) laid out as train/CLASS/*.JPEG and
test/CLASS/*.JPEG (ImageNet's validation images sorted into their class
folders, as torchvision's ImageFolder reads them; here the split named
`test`), or ArrayRecord shards written from it by python -m vit_jax.data.arrayrecord
(faster where a million small files are slow; name the splits train,test),
or a prepared TFDS imagenet2012 (`--config.data.source=tfds:imagenet2012`,
built once with download_and_prepare(file_format='array_record')).
10,000 training images are held out for model selection. Streamed by Grain
workers (one per core but one): random-resized crop + flip in the workers,
RandAugment, Mixup/CutMix, random erasing and label smoothing on the device.
Across hosts: the same command on each host with --distributed.

Recipe (Touvron et al. 2021, Table 9): AdamW lr 5e-4 x batch/512, weight
decay 0.05, batch 1024, 300 epochs, 5 warmup epochs then cosine, DropPath
0.1, RandAugment(2, 9), Mixup 0.8 / CutMix 1.0, random erasing 0.25, label
smoothing 0.1. The paper reaches 72.2% top-1 (DeiT-Ti), 79.8% (DeiT-S).

Reaches: not run here (no GPU and no ImageNet on this project's machines).
"""

from configs import deit_ti, model_section


def get_config(model: str = 'deit_tiny'):
  config = deit_ti.get_config()
  config.data.source = 'folder:/data/imagenet'
  config.data.image_size = 224
  config.data.val_size = 10_000
  config.data.pipeline = 'stream'
  config.data.mean = (0.485, 0.456, 0.406)  # ImageNet's.
  config.data.std = (0.229, 0.224, 0.225)
  config.model = model_section(model, patch_size=16, stem='patch', drop_path=0.1, dropout=0.0, dtype='bfloat16')
  config.data.stream_crop = 'random_resized'  # The workers take the crop and flip.
  config.batch_size = 1024
  config.eval_batch_size = 1000
  config.eval_every_epochs = 5
  config.log_every_steps = 100
  return config
