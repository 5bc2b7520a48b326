r"""DeiT-Ti/4 distilled from a ResNet-18 teacher (DeiT's hard distillation).

    python train.py --config configs/resnet18.py --workdir workdirs/resnet18   # the teacher, first
    python train.py --config configs/deit_ti_distill.py --workdir workdirs/deit_ti_distill

configs/deit_ti.py with a distillation token and head (DeiT, Touvron et al.
2021): the class head learns the labels, the distillation head the frozen
teacher's predicted class on the same augmented batch (alpha 0.5); test
predictions average the two heads. For write-up B's soft distillation
(CE + KL at a temperature; it reported 86%) add
--config.distill.kind=soft --config.distill.temperature=4.0.

Reaches: not yet measured here (a GPU job, like configs/deit_ti.py).
"""

from configs import deit_ti


def get_config():
  config = deit_ti.get_config()
  config.model.distillation_token = True
  config.distill = dict(teacher_workdir='workdirs/resnet18', kind='hard', temperature=1.0, alpha=0.5)
  return config
