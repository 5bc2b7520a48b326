r"""Earlier write-up A: ViT 256/10/8, patch 4, 80 epochs (reported ~85%).

    python train.py --config configs/writeup_a.py --workdir workdirs/writeup_a

ViT dim 256, depth 10, 8 heads, patch 4; AdamW lr 3e-4, weight decay 0.05,
cosine with warmup, 80 epochs. The write-up names no augmentation beyond the
usual crop + flip, nor a batch size: crop + flip, batch 128, 5 warmup epochs.

Reaches: not yet measured here (a GPU job).
"""

from configs import deit_ti, model_section


def get_config():
  config = deit_ti.get_config()
  config.model = model_section('writeup_a', patch_size=4, stem='patch', drop_path=0.0, dropout=0.0, dtype='bfloat16')
  deit_ti.crop_and_flip_only(config)
  config.batch_size = 128
  config.total_epochs = 80.0
  config.optim.lr = 3e-4
  config.optim.lr_base_batch_size = 128
  config.eval_every_epochs = 5
  return config
