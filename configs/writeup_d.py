r"""Earlier write-up D: ViT 256, 8 heads, MLP 512, dropout 0.1 (reported 80.81%).

    python train.py --config configs/writeup_d.py --workdir workdirs/writeup_d

AdamW lr 3e-4, weight decay 0.05, cosine with warmup, 200 epochs, batch
256; depth 8 (the write-up's other numbers match write-up C's model); crop +
flip, no other augmentation named.

Reaches: not yet measured here (a GPU job).
"""

from configs import deit_ti, model_section


def get_config():
  config = deit_ti.get_config()
  config.model = model_section('writeup_d', patch_size=4, stem='patch', dtype='bfloat16')
  deit_ti.crop_and_flip_only(config)
  config.batch_size = 256
  config.total_epochs = 200.0
  config.optim.lr = 3e-4
  config.optim.lr_base_batch_size = 256
  return config
