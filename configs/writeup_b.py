r"""Earlier write-up B: a ViT with LayerScale, and its three variants.

    python train.py --config configs/writeup_b.py:plain      # reported ~80%, 82-83% regularised
    python train.py --config configs/writeup_b.py:conv       # small CNN stem: ~82%
    python train.py --config configs/writeup_b.py:hybrid     # ResNet stages as the stem: 87%
    python train.py --config configs/resnet18.py --workdir workdirs/resnet18   # the teacher, then:
    python train.py --config configs/writeup_b.py:distilled  # soft distillation from ResNet-18: 86%

Pre-norm blocks with LayerScale (1e-4) and DropPath 0.1; AdamW with cosine
decay; Mixup, CutMix, crop, flip, random erasing, label smoothing (its
ColorJitter is left to RandAugment's colour operations). The write-up gives
no shape: DeiT-Ti's (192/12/3, patch 4). Distillation is write-up B's: CE
on the labels plus KL to the teacher at temperature 4, half each.

Reaches: not yet measured here (GPU jobs; see results/ for CPU runs of the
same models at a short budget, when there are).
"""

from configs import deit_ti, model_section

VARIANTS = {'plain': 'writeup_b', 'conv': 'writeup_b_conv', 'hybrid': 'writeup_b_hybrid',
            'distilled': 'writeup_b_distilled'}


def get_config(variant='plain'):
  if variant not in VARIANTS:
    raise ValueError(f'configs/writeup_b.py:{variant}: choose one of {", ".join(VARIANTS)}.')
  config = deit_ti.get_config()
  config.model = model_section(VARIANTS[variant], patch_size=4, dtype='bfloat16')
  config.aug.randaugment_layers = 0
  config.batch_size = 256
  config.total_epochs = 200.0
  config.optim.lr = 1e-3
  config.optim.lr_base_batch_size = 256
  if variant == 'distilled':
    config.distill = dict(teacher_workdir='workdirs/resnet18', kind='soft', temperature=4.0, alpha=0.5)
  return config
