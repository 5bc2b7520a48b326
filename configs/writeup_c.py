r"""Earlier write-up C: ViT 256/8/8, MLP ratio 4, dropout 0.1, 200 epochs.

    python train.py --config configs/writeup_c.py --workdir workdirs/writeup_c

AdamW lr 1e-3, weight decay 0.05, cosine over 200 epochs, batch 128, label
smoothing 0.1, crop + flip and AutoAugment (RandAugment(2, 9) stands in for
it here). The write-up did not report its accuracy.

Reaches: not yet measured here (a GPU job).
"""

from configs import deit_ti, model_section


def get_config():
  config = deit_ti.get_config()
  config.model = model_section('writeup_c', patch_size=4, stem='patch', dtype='bfloat16')
  for key in ('random_erasing', 'mixup_alpha', 'cutmix_alpha'):
    config.aug[key] = 0
  config.batch_size = 128
  config.total_epochs = 200.0
  config.optim.lr = 1e-3
  config.optim.lr_base_batch_size = 128
  config.schedule.warmup_epochs = 0.0
  return config
