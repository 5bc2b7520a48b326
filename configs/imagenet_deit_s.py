r"""DeiT-S/16 on ImageNet-1k at 224 px, streamed: as configs/imagenet_deit_ti.py
(data layout, conversion, recipe) with the small model (22M parameters).

    python train.py --config configs/imagenet_deit_s.py --workdir workdirs/imagenet_deit_s \
        --config.data.source=arrayrecord:/data/imagenet-ar

The DeiT paper reaches 79.8% top-1. Reaches: not run here (no GPU and no
ImageNet on this project's machines).
"""

from configs import imagenet_deit_ti


def get_config():
  return imagenet_deit_ti.get_config('deit_small')
