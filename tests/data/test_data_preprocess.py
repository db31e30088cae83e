"""Tests for spos_tf.data.preprocess: the windowed JPEG decode of the random-resized crop (the
reference is always a whole-image ``tf.io.decode_jpeg`` sliced with NumPy), the ``cifar``
augmentation (against NumPy's pad + window + flip) and the 32x32 evaluation identity.
"""

import numpy as np
import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
from spos_tf.data import preprocess


def smooth_image(rng, height, width, channels=3):
    """A colour field upsampled from 1/8 resolution plus noise: chroma varies across blocks."""
    coarse = rng.uniform(0, 255, (1, height // 8 + 1, width // 8 + 1, channels))
    image = tf.image.resize(coarse.astype(np.float32), (height, width)).numpy()[0]
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)


def random_windows(rng, height, width, n):
    """``n`` windows ``(y, x, h, w)``, including the whole image and windows at each border."""
    windows = [(0, 0, height, width), (0, 0, 9, 17), (height - 5, width - 7, 5, 7)]
    for _ in range(n):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        windows.append(
            (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
        )
    return windows


@pytest.mark.parametrize(
    "chroma_downsampling, channels", [(True, 3), (False, 3), (True, 1)], ids=["420", "444", "grey"]
)
def test_windowed_decode_equals_decode_then_slice(chroma_downsampling, channels):
    rng = np.random.default_rng(0)
    for height, width in ((75, 101), (64, 48)):
        image = smooth_image(rng, height, width, channels)
        encoded = tf.io.encode_jpeg(image, quality=85, chroma_downsampling=chroma_downsampling)
        full = tf.io.decode_jpeg(encoded, channels=3).numpy()
        for y, x, h, w in random_windows(rng, height, width, 30):
            window = preprocess.decode_jpeg_window(
                encoded, tf.constant([y, x, 0]), tf.constant([h, w, -1])
            )
            np.testing.assert_array_equal(
                window.numpy(), full[y : y + h, x : x + w], err_msg=f"window {(y, x, h, w)}"
            )


def test_plain_decode_and_crop_differs_at_the_window_sides_for_420():
    """Why decode_jpeg_window decodes a column more on each side: libjpeg's crop alone treats
    the window's sides as image borders when it upsamples 4:2:0 chroma."""
    rng = np.random.default_rng(1)
    encoded = tf.io.encode_jpeg(smooth_image(rng, 150, 200), quality=90)
    full = tf.io.decode_jpeg(encoded, channels=3).numpy()
    y, x, h, w = 16, 16, 64, 64
    plain = tf.image.decode_and_crop_jpeg(encoded, [y, x, h, w], channels=3).numpy()
    diff = np.abs(plain.astype(int) - full[y : y + h, x : x + w]).max(axis=(0, 2))
    assert diff[0] > 0 and diff[-1] > 0  # the first and last columns differ
    assert diff[1:-1].max() == 0  # the inside does not


@pytest.mark.parametrize("chroma_downsampling", [True, False], ids=["420", "444"])
def test_imagenet_augment_jpeg_equals_augment_of_the_decoded_image(chroma_downsampling):
    """Same seed, same crop window, flip and jitter: the windowed path changes only the cost."""
    rng = np.random.default_rng(2)
    encoded = tf.io.encode_jpeg(
        smooth_image(rng, 90, 120), quality=90, chroma_downsampling=chroma_downsampling
    )
    decoded = tf.io.decode_jpeg(encoded, channels=3)
    outputs = set()
    for step in range(8):
        seed = tf.constant([7, step], tf.int64)
        windowed = preprocess.imagenet_augment_jpeg(encoded, 32, seed).numpy()
        reference = preprocess.imagenet_augment(decoded, 32, seed).numpy()
        np.testing.assert_array_equal(windowed, reference)
        outputs.add(windowed.tobytes())
    assert len(outputs) == 8  # the seed does change the crop


def test_crop_window_depends_on_the_shape_only_and_stays_inside():
    seed = tf.constant([3, 4], tf.int64)
    for height, width in ((375, 500), (500, 333), (10, 10)):
        begin, size = preprocess.crop_window(tf.constant([height, width, 3]), seed)
        y, x, _ = begin.numpy()
        h, w, _ = size.numpy()
        assert 0 <= y and 0 <= x and y + h <= height and x + w <= width and h > 0 and w > 0
        again = preprocess.crop_window(tf.constant([height, width, 3]), seed)
        np.testing.assert_array_equal(again[0], begin)
        np.testing.assert_array_equal(again[1], size)


# ------------------------------------------------------------------------------------------ cifar
def cifar_candidates(image, pad=4):
    """NumPy's pad-and-crop-and-flip outcomes of ``image`` ``[S, S, 3]``: ``{(dy, dx, flipped):
    window}`` of the zero-padded image, ``(2 pad + 1)^2 x 2`` of them."""
    size = image.shape[0]
    padded = np.pad(image.astype(np.float32), [(pad, pad), (pad, pad), (0, 0)])
    out = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[dy : dy + size, dx : dx + size]
            out[(dy, dx, False)] = window
            out[(dy, dx, True)] = window[:, ::-1]
    return out


def identify(output, candidates):
    """The keys of ``candidates`` whose window equals ``output`` exactly."""
    return [key for key, window in candidates.items() if np.array_equal(output, window)]


def test_cifar_augment_is_a_zero_padded_window_flipped_or_not_over_all_offsets():
    # Pixels 1..255 (no zeros) make every (offset, flip) outcome distinct from every other.
    image = np.random.default_rng(0).integers(1, 256, (32, 32, 3)).astype(np.uint8)
    candidates = cifar_candidates(image)
    seeds = tf.data.Dataset.range(600)
    outs = np.stack(
        list(
            seeds.map(
                lambda s: preprocess.cifar_augment(
                    image, 32, tf.stack([s, tf.constant(7, tf.int64)])
                )
            ).as_numpy_iterator()
        )
    )
    assert outs.shape == (600, 32, 32, 3) and outs.dtype == np.float32
    stack = np.stack(list(candidates.values()))
    keys = list(candidates)
    found = []
    for out in outs:
        (match,) = np.flatnonzero(np.all(stack == out, axis=(1, 2, 3)))  # exactly one outcome
        found.append(keys[match])
    flips = np.mean([flipped for _, _, flipped in found])
    offsets = {(dy, dx) for dy, dx, _ in found}
    assert 0.4 < flips < 0.6  # horizontal flip with probability 1/2
    assert len(offsets) >= 75  # of 81; 600 uniform draws leave about 0.05 unseen
    assert {dy for dy, _ in offsets} == set(range(9)) == {dx for _, dx in offsets}
    # A function of (image, seed): same seed, same outcome, from uint8 or float input, with or
    # without a static shape (a decoded folder image has none: the bilinear 32 -> 32 resize it
    # then takes is the identity).
    seed = tf.constant([3, 7], tf.int64)
    first = preprocess.cifar_augment(image, 32, seed).numpy()
    np.testing.assert_array_equal(first, outs[3])
    np.testing.assert_array_equal(
        first, preprocess.cifar_augment(image.astype(np.float32), 32, seed).numpy()
    )
    unknown = tf.function(
        lambda x, s: preprocess.cifar_augment(x, 32, s),
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.uint8),
            tf.TensorSpec([2], tf.int64),
        ],
    )
    np.testing.assert_array_equal(first, unknown(image, seed).numpy())
    assert identify(first, candidates) == [found[3]]


def test_cifar_augment_resizes_other_sizes_first():
    image = np.random.default_rng(1).integers(1, 256, (40, 40, 3)).astype(np.uint8)
    resized = tf.image.resize(image.astype(np.float32), (32, 32)).numpy()
    out = preprocess.cifar_augment(image, 32, tf.constant([0, 1], tf.int64)).numpy()
    assert len(identify(out, cifar_candidates(resized))) == 1


@pytest.mark.parametrize("static_shape", [True, False], ids=["static", "unknown"])
def test_eval_of_32x32_at_32_with_crop_fraction_1_keeps_every_pixel(static_shape):
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    crop = preprocess.center_crop_and_resize
    if not static_shape:
        crop = tf.function(
            lambda x: preprocess.center_crop_and_resize(x, 32, 1.0),
            input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)],
        )
    for image in images:
        got = crop(image, 32, 1.0) if static_shape else crop(image)
        np.testing.assert_array_equal(got.numpy(), image.astype(np.float32))  # bit-identical
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    np.testing.assert_allclose(
        preprocess.preprocess_for_eval(images, 32, 1.0).numpy(),
        (images.astype(np.float32) - mean) / std,
        rtol=0,
        atol=1e-6,
    )
