"""Semantics of every augmentation op: what it must do, checked directly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageOps

from vit_jax.data import augment as A

KEY = jax.random.key(0)


def random_images(n=16, size=32, seed=0):
  return jax.random.randint(jax.random.key(seed), (n, size, size, 3), 0, 256).astype(jnp.uint8)


def test_flip_mirrors_some_images_and_keeps_the_others():
  x = random_images(64)
  y = A.random_flip(KEY, x)
  flipped = np.all(y == x[:, :, ::-1], axis=(1, 2, 3))
  kept = np.all(y == x, axis=(1, 2, 3))
  assert np.all(flipped | kept) and 10 < flipped.sum() < 54


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
  x = random_images(8)
  y = np.asarray(A.random_crop(KEY, x, padding=4))
  padded = np.pad(np.asarray(x), ((0, 0), (4, 4), (4, 4), (0, 0)))
  for img, out in zip(padded, y):
    assert any(np.array_equal(img[i:i + 32, j:j + 32], out) for i in range(9) for j in range(9))
  assert not np.array_equal(y, np.asarray(x))


def test_same_key_same_output_and_different_key_different_output(config_factory):
  aug = config_factory(**{'aug.mixup_alpha': 0.8, 'aug.cutmix_alpha': 1.0, 'aug.random_erasing': 0.25}).aug
  x, labels = random_images(16), jnp.arange(16) % 10
  run = jax.jit(lambda k: A.augment_batch(k, x, labels, aug, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3))
  a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.allclose(a[0], c[0])
  np.testing.assert_allclose(a[1].sum(-1), 1.0, atol=1e-5)


def test_label_smoothing():
  y = A.smooth_labels(jnp.array([3, 0]), 10, 0.1)
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
  assert float(y[0, 3]) == pytest.approx(0.91) and float(y[0, 0]) == pytest.approx(0.01)


def test_mixup_mixes_images_and_labels_with_the_same_lambda():
  x = random_images(8).astype(jnp.float32)
  labels = jax.nn.one_hot(jnp.arange(8), 10)
  y_img, y_lab = A.mixup_cutmix(KEY, x, labels, mixup_alpha=0.8, cutmix_alpha=0.0)
  lam = float(y_lab[0, 0])  # Image 0 is mixed with image 7.
  assert 0 < lam < 1 and float(y_lab[0, 7]) == pytest.approx(1 - lam, abs=1e-6)
  np.testing.assert_allclose(y_img, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(y_lab.sum(-1), 1.0, atol=1e-6)


def test_cutmix_pastes_one_box_and_lambda_is_the_kept_area():
  x = jnp.zeros((4, 32, 32, 3)).at[2:].set(1.0)  # Images 0, 1 are 0; their partners 3, 2 are 1.
  labels = jax.nn.one_hot(jnp.arange(4), 4)
  for seed in range(5):
    y_img, y_lab = A.mixup_cutmix(jax.random.key(seed), x, labels, mixup_alpha=0.0, cutmix_alpha=1.0)
    pasted = float(y_img[0, ..., 0].mean())  # Fraction of image 0 taken from image 3.
    assert float(y_lab[0, 3]) == pytest.approx(pasted, abs=1e-6)
    assert float(y_lab[0, 0]) == pytest.approx(1 - pasted, abs=1e-6)
    rows, cols = np.nonzero(np.asarray(y_img[0, ..., 0]))
    if rows.size:  # The pasted region is one axis-aligned box.
      assert rows.size == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_random_erasing_replaces_one_rectangle_per_image():
  x = jnp.full((32, 32, 32, 3), 7.0)
  y = np.asarray(A.random_erasing(KEY, x, prob=1.0))
  for img in y:
    rows, cols = np.nonzero(np.any(img != 7.0, axis=-1))
    area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert rows.size == area and 0.015 * 1024 <= area <= 0.4 * 1024
  np.testing.assert_array_equal(A.random_erasing(KEY, x, prob=0.0), x)


# ------------------------------------------------------------- RandAugment

def as_pil(img):
  return Image.fromarray(np.asarray(img, np.uint8))


@pytest.mark.parametrize('op,pil_op', [
    (A.equalize, ImageOps.equalize),
    (A.auto_contrast, ImageOps.autocontrast),
    (A.invert, ImageOps.invert),
])
def test_ops_match_pillow(op, pil_op):
  x = (random_images(4) // 2 + 40).astype(jnp.float32)  # Not using the full range, so ops do something.
  y = np.asarray(op(x, jnp.ones(4), jnp.ones(4)))
  for img, out in zip(np.asarray(x), y):
    np.testing.assert_allclose(out, np.asarray(pil_op(as_pil(img))), atol=1.0)


def test_posterize_and_solarize_match_pillow():
  x = random_images(2).astype(jnp.float32)
  level = jnp.full(2, 0.5)  # 2 bits dropped; threshold 128.
  for img, p, s in zip(np.asarray(x), A.posterize(x, level, None), A.solarize(x, level, None)):
    np.testing.assert_array_equal(p, np.asarray(ImageOps.posterize(as_pil(img), 6)))
    np.testing.assert_array_equal(s, np.asarray(ImageOps.solarize(as_pil(img), 128)))


@pytest.mark.parametrize('op', A.RAND_AUGMENT_OPS)
def test_ops_keep_shape_range_and_are_identity_at_level_zero_where_they_should(op):
  x = random_images(4).astype(jnp.float32)
  y = op(x, jnp.zeros(4), jnp.ones(4))
  assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 255
  if op not in (A.auto_contrast, A.equalize, A.invert):
    np.testing.assert_allclose(y, x, atol=1e-3)
  strong = op(x, jnp.ones(4), jnp.ones(4))
  assert not np.allclose(strong, x)


def test_translate_moves_content_by_whole_pixels_and_fills_the_gap():
  x = random_images(1).astype(jnp.float32)
  level = jnp.array([4 / (0.45 * 32)])  # 4 pixels.
  y = np.asarray(A.translate_x(x, level, jnp.ones(1)))
  np.testing.assert_allclose(y[0, :, :-4], np.asarray(x)[0, :, 4:], atol=1e-3)
  np.testing.assert_allclose(y[0, :, -4:], 128.0)


def test_rotate_matches_pillow_inside_the_image():
  x = random_images(1, size=32).astype(jnp.float32)
  smooth = jax.image.resize(jax.image.resize(x, (1, 8, 8, 3), 'linear'), (1, 32, 32, 3), 'linear')
  y = np.asarray(A.rotate(smooth, jnp.array([0.5]), jnp.ones(1)))  # +15 degrees
  expected = np.asarray(as_pil(np.asarray(smooth[0]).round()).rotate(15, Image.BILINEAR, fillcolor=(128,) * 3))
  inner = (slice(8, 24), slice(8, 24))
  assert np.abs(y[0][inner] - expected[inner]).mean() < 1.0


def test_rand_augment_gives_each_image_one_op_in_place():
  x = random_images(30).astype(jnp.float32)
  identity = lambda images, level, sign: images
  y = np.asarray(A.rand_augment(KEY, x, num_layers=1, prob=1.0, ops=(A.invert, identity, identity)))
  inverted = np.all(y == 255 - np.asarray(x), axis=(1, 2, 3))
  kept = np.all(y == np.asarray(x), axis=(1, 2, 3))
  assert np.all(inverted | kept) and inverted.sum() == 10  # Exactly a third, each image where it was.


def test_rand_augment_is_jittable_and_deterministic():
  x = random_images(20)
  run = jax.jit(lambda k: A.rand_augment(k, x))
  np.testing.assert_array_equal(run(jax.random.key(3)), run(jax.random.key(3)))
  assert not np.allclose(run(jax.random.key(3)), run(jax.random.key(4)))
