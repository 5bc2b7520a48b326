"""A Vision Transformer in JAX / Flax NNX, its DeiT training recipe, and the
tools around it.

    import vit_jax
    model = vit_jax.create_model('deit_tiny', num_classes=10, patch_size=4)   # an nnx.Module
    report = vit_jax.train_and_evaluate(config, workdir='workdirs/run')        # train, or resume
    classifier = vit_jax.load_run('workdirs/run')                              # a finished run
    classifier.predict(images)                                                  # uint8 [B, H, W, 3] -> names
    splits = vit_jax.load_data('cifar10')                                       # {'train', 'test'}: arrays

The names load their modules on first use: `import vit_jax` imports no JAX.
Where things are: models/ (architectures by name), data/ (data sets, in
memory or streamed), training/ (the loop and its parts: steps, optim,
losses, budget, checkpoint, resume, report).
"""

from __future__ import annotations

from vit_jax import lazy

_PUBLIC = {  # name: (module, attribute)
    'create_model': ('vit_jax.models', 'create_model'),
    'PRESETS': ('vit_jax.models', 'PRESETS'),
    'ViT': ('vit_jax.models', 'ViT'),
    'ViTConfig': ('vit_jax.models', 'ViTConfig'),
    'train_and_evaluate': ('vit_jax.training.loop', 'train_and_evaluate'),
    'load_run': ('vit_jax.inference', 'load_run'),
    'Classifier': ('vit_jax.inference', 'Classifier'),
    'load_data': ('vit_jax.data', 'load'),
    'DataError': ('vit_jax.data', 'DataError'),
    'ConfigError': ('vit_jax.training.validate', 'ConfigError'),
}
__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.exports(globals(), _PUBLIC)
