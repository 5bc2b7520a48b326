"""Batched, jittable image augmentation driven by a PRNG key.

Everything runs on the accelerator on a whole batch at once: images are
`[B, H, W, 3]` with values in [0, 255] (uint8 or float), labels are one-hot
or soft `[B, K]`. The same key gives the same output.

RandAugment applies one operation per image per layer, and computes only
that one: the batch is shuffled and dealt out to the operations in equal
shares (image j of the shuffled batch gets operation j mod 15), so each
operation runs once on its share. A per-image `lax.switch` under `vmap`
would turn into a select that runs every operation on every image.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

FILL = 128.0  # Value of pixels uncovered by geometric ops (timm's default).


# ---------------------------------------------------------------- basic ops

def random_crop(key, images, padding: int):
  """Pads by `padding` zeros on each side and crops back at random offsets."""
  b, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * padding + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def random_flip(key, images):
  """Mirrors each image left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1], images)


def normalize(images, mean, std):
  """[0, 255] images -> float32 (x / 255 - mean) / std per channel."""
  return (images.astype(jnp.float32) / 255.0 - jnp.asarray(mean)) / jnp.asarray(std)


def smooth_labels(labels, num_classes: int, smoothing: float):
  """Integer labels [B] -> smoothed one-hot [B, K] (rows sum to 1)."""
  return jax.nn.one_hot(labels, num_classes) * (1.0 - smoothing) + smoothing / num_classes


def random_erasing(key, images, prob: float, min_area=0.02, max_area=1 / 3, min_aspect=0.3):
  """timm RandomErasing (mode 'pixel') on normalised images: with `prob`, a
  random rectangle of each image is replaced by standard-normal noise."""
  b, h, w, _ = images.shape
  k_apply, k_area, k_aspect, k_y, k_x, k_noise = jax.random.split(key, 6)
  area = jax.random.uniform(k_area, (b,), minval=min_area, maxval=max_area) * h * w
  log_aspect = jax.random.uniform(k_aspect, (b,), minval=math.log(min_aspect), maxval=-math.log(min_aspect))
  eh = jnp.clip(jnp.round(jnp.sqrt(area * jnp.exp(log_aspect))), 1, h - 1).astype(jnp.int32)
  ew = jnp.clip(jnp.round(jnp.sqrt(area / jnp.exp(log_aspect))), 1, w - 1).astype(jnp.int32)
  top = (jax.random.uniform(k_y, (b,)) * (h - eh + 1)).astype(jnp.int32)
  left = (jax.random.uniform(k_x, (b,)) * (w - ew + 1)).astype(jnp.int32)
  rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
  inside = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
            & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None]))  # [B, H, W]
  inside &= jax.random.bernoulli(k_apply, prob, (b, 1, 1))
  noise = jax.random.normal(k_noise, images.shape, images.dtype)
  return jnp.where(inside[..., None], noise, images)


def mixup_cutmix(key, images, labels, *, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=1.0):
  """timm Mixup in 'batch' mode: each image is mixed with its mirror in the
  reversed batch, using one λ for the batch; CutMix (with `switch_prob`)
  pastes a box instead and λ becomes the kept area. Labels [B, K] are mixed
  with the same λ, so soft labels still sum to 1."""
  b, h, w, _ = images.shape
  k_apply, k_switch, k_mix, k_cut, k_y, k_x = jax.random.split(key, 6)
  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = jax.random.bernoulli(k_switch, switch_prob)
  else:
    use_cutmix = jnp.asarray(cutmix_alpha > 0)
  lam_mix = jax.random.beta(k_mix, mixup_alpha, mixup_alpha) if mixup_alpha > 0 else 1.0
  lam_cut = jax.random.beta(k_cut, cutmix_alpha, cutmix_alpha) if cutmix_alpha > 0 else 1.0
  cut_h = (h * jnp.sqrt(1.0 - lam_cut)).astype(jnp.int32)
  cut_w = (w * jnp.sqrt(1.0 - lam_cut)).astype(jnp.int32)
  cy, cx = jax.random.randint(k_y, (), 0, h), jax.random.randint(k_x, (), 0, w)
  y0, y1 = jnp.clip(cy - cut_h // 2, 0, h), jnp.clip(cy + cut_h // 2, 0, h)
  x0, x1 = jnp.clip(cx - cut_w // 2, 0, w), jnp.clip(cx + cut_w // 2, 0, w)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  box = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # [H, W]
  lam_box = 1.0 - box.sum() / (h * w)
  apply = jax.random.bernoulli(k_apply, prob)
  lam = jnp.where(apply, jnp.where(use_cutmix, lam_box, lam_mix), 1.0)
  images = images.astype(jnp.float32)
  other = images[::-1]
  cut = jnp.where(box[None, :, :, None], other, images)
  mixed = lam * images + (1.0 - lam) * other
  images = jnp.where(apply & use_cutmix, cut, mixed)
  return images, lam * labels + (1.0 - lam) * labels[::-1]


# ---------------------------------------------------------- RandAugment ops
# Each op maps (images [b, H, W, 3] float in [0, 255], level [b] in [0, 1],
# sign [b] in {-1, +1}) -> images. Levels follow timm's 'increasing' set.

def _per_image(v):
  return v[:, None, None, None]


def _blend(degenerate, images, factor):
  return jnp.clip(degenerate + _per_image(factor) * (images - degenerate), 0.0, 255.0)


def _grayscale(images):  # [b, H, W, 3] -> [b, H, W, 1], ITU-R 601-2 like PIL.
  return (images @ jnp.array([0.299, 0.587, 0.114]))[..., None]


def _warp(images, matrix):
  """Bilinear affine warp: output pixel p samples input at matrix @ (p - c) + c.
  matrix: [b, 2, 3] acting on centred (x, y, 1); uncovered pixels get FILL."""
  b, h, w, _ = images.shape
  ys, xs = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing='ij')
  grid = jnp.stack([xs, ys, jnp.ones_like(xs)], -1)  # [H, W, 3]
  src = jnp.einsum('bij,hwj->bhwi', matrix, grid)  # [b, H, W, 2] centred (x, y)
  sx, sy = src[..., 0] + (w - 1) / 2, src[..., 1] + (h - 1) / 2
  x0, y0 = jnp.floor(sx), jnp.floor(sy)
  out = jnp.zeros_like(images)
  for dy in (0, 1):
    for dx in (0, 1):
      xi, yi = x0 + dx, y0 + dy
      weight = (1 - jnp.abs(sx - xi)) * (1 - jnp.abs(sy - yi))  # [b, H, W]
      valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
      xc, yc = jnp.clip(xi, 0, w - 1).astype(jnp.int32), jnp.clip(yi, 0, h - 1).astype(jnp.int32)
      pixels = jax.vmap(lambda img, y, x: img[y, x])(images, yc, xc)  # [b, H, W, 3]
      out += (weight * valid)[..., None] * pixels + (weight * ~valid)[..., None] * FILL
  return out


def _affine(a, b_, c, d, tx=None, ty=None):
  zeros = jnp.zeros_like(a)
  tx = zeros if tx is None else tx
  ty = zeros if ty is None else ty
  return jnp.stack([jnp.stack([a, b_, tx], -1), jnp.stack([c, d, ty], -1)], -2)  # [b, 2, 3]


def rotate(images, level, sign):
  angle = jnp.deg2rad(30.0 * level * sign)  # Counter-clockwise for a positive angle, as PIL.
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  return _warp(images, _affine(cos, -sin, sin, cos))


def shear_x(images, level, sign):
  one, zero = jnp.ones_like(level), jnp.zeros_like(level)
  return _warp(images, _affine(one, 0.3 * level * sign, zero, one))


def shear_y(images, level, sign):
  one, zero = jnp.ones_like(level), jnp.zeros_like(level)
  return _warp(images, _affine(one, zero, 0.3 * level * sign, one))


def translate_x(images, level, sign):
  one, zero = jnp.ones_like(level), jnp.zeros_like(level)
  return _warp(images, _affine(one, zero, zero, one, tx=0.45 * level * sign * images.shape[2]))


def translate_y(images, level, sign):
  one, zero = jnp.ones_like(level), jnp.zeros_like(level)
  return _warp(images, _affine(one, zero, zero, one, ty=0.45 * level * sign * images.shape[1]))


def auto_contrast(images, level, sign):
  lo = images.min(axis=(1, 2), keepdims=True)
  hi = images.max(axis=(1, 2), keepdims=True)
  scaled = jnp.clip((images - lo) * (255.0 / jnp.maximum(hi - lo, 1e-6)), 0.0, 255.0)
  return jnp.where(hi > lo, scaled, images)


def _equalize_channel(channel):  # [H, W] float of integer values -> same, PIL's algorithm.
  values = channel.astype(jnp.int32)
  hist = jnp.bincount(values.ravel(), length=256)
  last_nonzero = hist[255 - jnp.argmax(hist[::-1] > 0)]
  step = (hist.sum() - last_nonzero) // 255
  lut = jnp.clip((jnp.cumsum(hist) - hist + step // 2) // jnp.maximum(step, 1), 0, 255)
  return jnp.where(step == 0, channel, lut[values].astype(channel.dtype))


def equalize(images, level, sign):
  per_channel = jax.vmap(_equalize_channel, in_axes=-1, out_axes=-1)
  return jax.vmap(per_channel)(jnp.round(images))


def invert(images, level, sign):
  return 255.0 - images


def posterize(images, level, sign):
  shift = (4 * level).astype(jnp.int32)  # Keeps 8 - 0 ... 8 - 4 bits.
  values = jnp.round(images).astype(jnp.int32)
  return ((values >> _per_image(shift)) << _per_image(shift)).astype(images.dtype)


def solarize(images, level, sign):
  threshold = _per_image(256.0 - 256.0 * level)
  return jnp.where(images >= threshold, 255.0 - images, images)


def solarize_add(images, level, sign):
  return jnp.where(images < 128, jnp.minimum(images + _per_image(110.0 * level), 255.0), images)


def color(images, level, sign):
  return _blend(_grayscale(images), images, 1.0 + 0.9 * level * sign)


def contrast(images, level, sign):
  mean = _grayscale(images).mean(axis=(1, 2, 3), keepdims=True)
  return _blend(mean, images, 1.0 + 0.9 * level * sign)


def brightness(images, level, sign):
  return _blend(jnp.zeros_like(images), images, 1.0 + 0.9 * level * sign)


def sharpness(images, level, sign):
  kernel = jnp.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], images.dtype) / 13.0
  smooth = jax.lax.conv_general_dilated(
      images.transpose(0, 3, 1, 2).reshape(-1, 1, *images.shape[1:3]), kernel[None, None],
      (1, 1), 'VALID').reshape(images.shape[0], 3, images.shape[1] - 2, images.shape[2] - 2).transpose(0, 2, 3, 1)
  degenerate = images.at[:, 1:-1, 1:-1].set(smooth)  # PIL keeps the border.
  return _blend(degenerate, images, 1.0 + 0.9 * level * sign)


RAND_AUGMENT_OPS = (auto_contrast, equalize, invert, rotate, posterize, solarize, solarize_add, color,
                    contrast, brightness, sharpness, shear_x, shear_y, translate_x, translate_y)


def rand_augment(key, images, *, num_layers=2, magnitude=9.0, magnitude_std=0.5, prob=0.5,
                 ops=RAND_AUGMENT_OPS):
  """RandAugment (Cubuk et al. 2020) as timm's 'rand-m9-mstd0.5-inc1':
  `num_layers` times, each image gets one random op (applied with `prob`)
  at magnitude m ~ N(magnitude, magnitude_std) clipped to [0, 10]."""
  b = images.shape[0]
  images = images.astype(jnp.float32)
  for layer_key in jax.random.split(key, num_layers):
    k_perm, k_mag, k_sign, k_apply = jax.random.split(layer_key, 4)
    order = jax.random.permutation(k_perm, b)
    shuffled = images[order]
    level = jnp.clip(magnitude + magnitude_std * jax.random.normal(k_mag, (b,)), 0.0, 10.0) / 10.0
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (b,)), 1.0, -1.0)
    apply = jax.random.bernoulli(k_apply, prob, (b, 1, 1, 1))
    out = shuffled
    for i, op in enumerate(ops):  # Op i takes shuffled images i, i + len(ops), ...
      share = slice(i, None, len(ops))
      if i < b:
        out = out.at[share].set(op(shuffled[share], level[share], sign[share]))
    out = jnp.where(apply, out, shuffled)
    images = jnp.zeros_like(images).at[order].set(out)
  return images


def augment_batch(key, images, labels, aug, *, num_classes: int, mean, std):
  """The DeiT training pipeline on a batch of uint8 images [B, H, W, 3] and
  integer labels [B]: crop, flip, RandAugment, normalise, random erasing,
  label smoothing, Mixup/CutMix. `aug` holds the switches (see configs).
  Returns float32 images [B, H, W, 3] and soft labels [B, K]."""
  k_crop, k_flip, k_rand, k_erase, k_mix = jax.random.split(key, 5)
  x = images
  if aug.crop_padding:
    x = random_crop(k_crop, x, aug.crop_padding)
  if aug.flip:
    x = random_flip(k_flip, x)
  if aug.randaugment_layers:
    x = rand_augment(k_rand, x, num_layers=aug.randaugment_layers, magnitude=aug.randaugment_magnitude,
                     magnitude_std=aug.randaugment_magnitude_std)
  x = normalize(x, mean, std)
  if aug.random_erasing:
    x = random_erasing(k_erase, x, aug.random_erasing)
  y = smooth_labels(labels, num_classes, aug.label_smoothing)
  if aug.mixup_alpha or aug.cutmix_alpha:
    x, y = mixup_cutmix(k_mix, x, y, mixup_alpha=aug.mixup_alpha, cutmix_alpha=aug.cutmix_alpha,
                        switch_prob=aug.mix_switch_prob, prob=aug.mix_prob)
  return x, y
