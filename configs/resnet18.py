r"""ResNet-18 (CIFAR variant) on CIFAR-10: the teacher of DeiT distillation.

    python train.py --config configs/resnet18.py --workdir workdirs/resnet18

The usual CIFAR ResNet recipe (as kuangliu/pytorch-cifar, ~95% at 200
epochs): SGD with Nesterov momentum 0.9, lr 0.1 per 128 images, weight decay
5e-4, cosine decay over 200 epochs, crop + flip, batch 128. Its best
checkpoint on the validation split is what configs/deit_ti_distill.py loads.

Reaches: not yet measured here (a GPU job: on the 2-core CPU of this
project's machine one epoch takes about 20 minutes).
"""

from configs import deit_ti, model_section


def get_config():
  config = deit_ti.get_config()
  config.model = model_section('resnet18', width=64, dtype='bfloat16')  # vit_jax.models.PRESETS
  deit_ti.crop_and_flip_only(config)
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.total_epochs = 200.0
  config.optim = dict(name='sgd', lr=0.1, lr_base_batch_size=128, weight_decay=5e-4, momentum=0.9, nesterov=True,
                      grad_clip_norm=0.0, ema_decay=0.0)
  config.schedule = dict(decay_type='cosine', warmup_epochs=1.0, warmup_steps=0, min_lr=0.0)
  config.eval_every_epochs = 5
  return config
