"""A finished run as an image classifier, numpy in and out.

    classifier = load_run('workdirs/cpu_quick')
    classifier.predict(images)          # uint8 [B, H, W, 3] -> class names, [B]
    classifier.probabilities(images)    # float32 [B, K]

The parameters are those of the run's report (the best on validation), the
images are resized to the run's size where they differ, and normalized and
(where the run did) flip-averaged as its test evaluation was.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx

from vit_jax.training.checkpoint import model_of_run
from vit_jax.data.augment import normalize
from vit_jax.images import resize_square


@dataclasses.dataclass
class Classifier:
  model: nnx.Module
  class_names: tuple[str, ...]
  image_size: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  flip: bool = False

  def __post_init__(self):
    graphdef, variables = nnx.split(self.model)

    @jax.jit
    def logits(variables, images):  # uint8 [B, S, S, 3] -> [B, K]
      model, x = nnx.merge(graphdef, variables), normalize(images, self.mean, self.std)
      return (model(x) + model(x[:, :, ::-1])) / 2 if self.flip else model(x)
    self._logits, self._variables = logits, variables

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    """float32 [B, K] for uint8 RGB images [B, H, W, 3] (or one [H, W, 3])."""
    images = np.asarray(images, np.uint8)
    images = images[None] if images.ndim == 3 else images
    if images.shape[1:3] != (self.image_size, self.image_size):
      images = np.stack([resize_square(image, self.image_size) for image in images])
    return np.asarray(jax.nn.softmax(self._logits(self._variables, images), axis=-1))

  def predict(self, images: np.ndarray) -> list[str]:
    """The class name of each image."""
    return [self.class_names[k] for k in self.probabilities(images).argmax(-1)]


def load_run(workdir: str) -> Classifier:
  """The classifier of the finished run in `workdir` (FileNotFoundError naming what is missing)."""
  model, config = model_of_run(workdir)
  with open(os.path.join(workdir, 'report.json')) as f:
    class_names = tuple(json.load(f)['per_class_accuracy'])
  data = config['data']
  return Classifier(model, class_names, data['image_size'], tuple(data['mean']), tuple(data['std']),
                    flip=bool(config.get('test_time_flip', False)))
