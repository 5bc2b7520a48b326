r"""A small ViT that learns CIFAR-10 in a 10-minute budget on a 2-core CPU.

    python train.py --config configs/cpu_quick.py

The DeiT recipe of configs/deit_ti.py cut to what 600 s of a laptop-class
CPU can use: a ViT of dim 128, depth 4, 4 heads, MLP 256, patch 4 (64
tokens), mean pooling (0.55M parameters); batch 128, Muon (Adam for the
vectors and the patch kernel; q, k and v orthogonalized apart) at 2e-3, its
matrix steps 3x AdamW's RMS, with a short warmup and cosine decay, flips
and label smoothing (random crops, RandAugment, Mixup/CutMix and erasing
cost more than they give in a few epochs); the first 60% of the steps on
16x16 images (16 tokens, 4.4x faster steps); test-time flip averaging; the
CPU split into 2 XLA devices, each taking half of every batch and
orthogonalizing half of Muon's matrices. The step count is planned to fill
`total_seconds` (training, compilation and evaluations; data loading and
the final test evaluation come on top), and replanned every 50 steps.
5,000 training images are held out for validation; the test split is
evaluated once, at the end. Reaches: see README ("Results") and
results/cpu_recipe.md, measured on the JPEG copy of CIFAR-10 (72.3-72.8% on a
2-core AVX2 EPYC, 75.9-76.3% on a 2-core AVX-512 Xeon, 76.3% on a 2-core
AVX-512 EPYC with the validation images drawn by name, 80650a4).
"""

from configs import deit_ti, model_section


def get_config():
  config = deit_ti.get_config()
  config.model = model_section('deit_tiny', patch_size=4, stem='patch', dim=128, depth=4, num_heads=4, mlp_dim=256,
                               pool='mean', drop_path=0.0, dropout=0.0, dtype='float32')
  config.aug.crop_padding = 0  # No random crops: +3.4 points at 700 steps (results/cpu_recipe.md).
  config.aug.randaugment_layers = 0
  config.aug.random_erasing = 0.0
  config.aug.mixup_alpha = 0.0
  config.aug.cutmix_alpha = 0.0
  config.batch_size = 128
  config.total_epochs = 0.0
  config.total_seconds = 600.0
  config.optim.name = 'muon'  # +13 points over AdamW at 1,200 steps (results/cpu_recipe.md).
  config.optim.muon_rms = 0.6  # Muon's steps 3x AdamW's RMS: +5 points at 700 steps (results/cpu_recipe.md).
  config.optim.lr = 2e-3
  config.optim.lr_base_batch_size = 128
  config.schedule.warmup_epochs = 0.3
  config.low_res_stage = dict(image_size=16, fraction=0.6)
  config.test_time_flip = True
  config.eval_every_epochs = 4  # Here ~3.3 epochs fit: one evaluation, at the end (one at epoch 3 cost 20 s).
  config.log_every_steps = 50
  config.cpu_devices = 2  # Each batch and Muon's matrices split over the 2 cores (results/profile_cpu.md).
  return config
