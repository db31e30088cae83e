"""``eval_resize="reference"``: the release's ``OpencvResize(256)`` + ``CenterCrop(224)`` in TF ops.

The pinned fixture ``tests/fixtures/opencv_resize.npz`` holds what OpenCV returns for the inputs
:func:`pattern` makes, so these tests need no OpenCV. It was written by this file's ``__main__``:

    PYTHONPATH=<dir with opencv-python-headless 5.1.0> python tests/data/test_eval_resize.py

that is, for each case ``cv2.resize(pattern(h, w, seed), (width, height),
interpolation=cv2.INTER_LINEAR)`` with ``cv2.__version__ == "5.1.0"`` (opencv-python-headless
5.1.0.95, x86-64); opencv-python-headless 4.10.0.84 gives the same bytes (checked when the
fixture was made). Small outputs are stored whole; the short-side-256 outputs (too big to keep)
as their SHA-256 plus row and column sums, which localise a mismatch. Measured when the fixture
was made: :func:`spos_tf.data.preprocess.opencv_resize_uint8` equals cv2 4.10.0 and 5.1.0 bit for
bit (max abs difference 0) on these cases and on 60 random images of random sizes (1x1 to 1000x1333)
with their reference sizes and 60 more random target sizes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.data import DataConfig, build_dataset
from spos_tf.data import preprocess

FIXTURE = Path(__file__).parents[1] / "fixtures" / "opencv_resize.npz"
# name: (input height, input width, seed, output (height, width) or None for the reference's
# short-side-256 size, keep the whole output)
CASES = {
    "landscape_up": (37, 53, 1, None, False),  # -> 256 x 367
    "portrait_up": (53, 37, 2, None, False),  # -> 367 x 256
    "portrait_down": (300, 257, 3, None, False),  # -> 299 x 256
    "photo_4_3": (375, 500, 4, None, False),  # -> 256 x 341, a typical ImageNet image
    "mixed": (37, 53, 5, (71, 29), True),  # up in y, down in x
    "down": (300, 257, 6, (45, 61), True),
    "half": (300, 258, 7, (150, 129), True),  # exact 2x: OpenCV takes INTER_AREA
    "double": (37, 53, 8, (74, 106), True),  # exact 2x up
}


def pattern(height: int, width: int, seed: int) -> np.ndarray:
    """Deterministic pseudo-random ``uint8 [height, width, 3]`` from integer hashing (no RNG
    whose stream could change between NumPy versions)."""
    i, j, k = np.meshgrid(
        np.arange(height, dtype=np.uint64),
        np.arange(width, dtype=np.uint64),
        np.arange(3, dtype=np.uint64),
        indexing="ij",
    )
    v = i * np.uint64(7919) + j * np.uint64(104729) + k * np.uint64(1299709)
    v = (v + np.uint64(seed) * np.uint64(15485863)) & np.uint64(0xFFFFFFFF)
    v = (v ^ (v >> np.uint64(15))) * np.uint64(2654435761) & np.uint64(0xFFFFFFFF)
    v = v ^ (v >> np.uint64(13))
    return (v & np.uint64(255)).astype(np.uint8)


def _reference_size(height: int, width: int, size: int = 256):
    """The release's ``OpencvResize``: cv2's ``(width, height)`` -> ``(height, width)``."""
    w, h = (
        (int(size / height * width + 0.5), size)
        if height < width
        else (size, int(size / width * height + 0.5))
    )
    return h, w


def _output_size(case):
    height, width, _, size, _ = case
    return size if size is not None else _reference_size(height, width)


def _summary(out: np.ndarray) -> dict:
    return {
        "sha256": hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest(),
        "row_sums": out.astype(np.int64).sum(axis=(1, 2)),
        "col_sums": out.astype(np.int64).sum(axis=0).reshape(-1),
    }


def _ours(case) -> np.ndarray:
    height, width, seed = case[:3]
    out_h, out_w = _output_size(case)
    return preprocess.opencv_resize_uint8(tf.constant(pattern(height, width, seed)), out_h, out_w)


def test_opencv_resize_equals_pinned_cv2_output_bit_for_bit():
    fixture = np.load(FIXTURE)
    assert str(fixture["cv2_version"]) == "5.1.0"
    for name, case in CASES.items():
        ours = _ours(case).numpy()
        assert ours.shape == (*_output_size(case), 3), name
        if case[4]:
            theirs = fixture[f"{name}_out"]
            diff = np.abs(ours.astype(int) - theirs.astype(int))
            assert diff.max() == 0, f"{name}: max |diff| {diff.max()}, {np.count_nonzero(diff)} px"
        else:
            summary = _summary(ours)
            np.testing.assert_array_equal(summary["row_sums"], fixture[f"{name}_row_sums"], name)
            np.testing.assert_array_equal(summary["col_sums"], fixture[f"{name}_col_sums"], name)
            assert summary["sha256"] == str(fixture[f"{name}_sha256"]), name


def test_opencv_resize_takes_batches_and_float_inputs():
    images = np.stack([pattern(37, 53, 1), pattern(37, 53, 5)])
    batch = preprocess.opencv_resize_uint8(tf.constant(images), 71, 29).numpy()
    np.testing.assert_array_equal(batch[1], np.load(FIXTURE)["mixed_out"])
    as_float = preprocess.opencv_resize_uint8(tf.constant(images, tf.float32), 71, 29)
    np.testing.assert_array_equal(as_float.numpy(), batch)
    assert batch.dtype == np.uint8


def test_opencv_resize_is_the_identity_at_the_same_size_and_constant_on_constants():
    image = pattern(13, 17, 9)
    np.testing.assert_array_equal(preprocess.opencv_resize_uint8(image, 13, 17).numpy(), image)
    flat = np.full((5, 7, 3), 201, np.uint8)
    np.testing.assert_array_equal(preprocess.opencv_resize_uint8(flat, 40, 3).numpy(), 201)


@pytest.mark.parametrize(
    "height, width", [(375, 500), (500, 375), (37, 53), (53, 37), (256, 256), (199, 200), (1, 3)]
)
def test_shorter_side_becomes_256_as_the_release_computes_it(height, width):
    new_h, new_w = (int(v) for v in preprocess.reference_resize_size(height, width, 256))
    assert (new_h, new_w) == _reference_size(height, width)
    assert min(new_h, new_w) == 256
    assert (new_h >= new_w) == (height >= width)  # portrait stays portrait
    out = preprocess.reference_resize_and_center_crop(
        tf.constant(pattern(height, width, 0)), 224, 0.875
    )
    assert out.shape == (224, 224, 3) and out.dtype == tf.float32


def test_crop_offsets_are_torchvision_center_crops():
    for side in range(224, 700):
        top, left = (int(v) for v in preprocess.reference_crop_offsets(side, side + 1, 224))
        assert top == int(round((side - 224) / 2.0)), side  # halves to even, e.g. 341 -> 58
        assert left == int(round((side + 1 - 224) / 2.0)), side
    # the crop is the resized image's window at those offsets
    image = pattern(375, 500, 4)
    resized = preprocess.opencv_resize_uint8(image, 256, 341).numpy()
    out = preprocess.reference_resize_and_center_crop(tf.constant(image), 224, 0.875).numpy()
    np.testing.assert_array_equal(out, resized[16:240, 58:282].astype(np.float32))
    # other sizes: the shorter side is round(image_size / crop_fraction)
    small = preprocess.reference_resize_and_center_crop(tf.constant(image), 32, 1.0).numpy()
    resized = preprocess.opencv_resize_uint8(image, 32, 43).numpy()  # 43 - 32 = 11: left 6
    np.testing.assert_array_equal(small, resized[:, 6:38].astype(np.float32))


def test_default_is_the_standard_resize_and_reference_reaches_the_pipeline(data_dir):
    assert DataConfig().eval_resize == "standard"
    image = tf.constant(pattern(40, 52, 3))
    np.testing.assert_array_equal(
        preprocess.preprocess_for_eval(image, 16, 0.875).numpy(),
        preprocess.finish(preprocess.center_crop_and_resize(image, 16, 0.875)).numpy(),
    )
    np.testing.assert_array_equal(
        preprocess.preprocess_for_eval(image, 16, 0.875, "reference", "reference").numpy(),
        preprocess.finish(
            preprocess.reference_resize_and_center_crop(image, 16, 0.875), "reference"
        ).numpy(),
    )

    def first_batch(**kwargs):
        config = DataConfig(name="spos_digits", data_dir=data_dir, **kwargs)
        return next(iter(build_dataset(config, "holdout", 8, training=False, seed=0)))[0].numpy()

    default = first_batch()
    batches = {mode: first_batch(eval_resize=mode) for mode in ("standard", "reference")}
    np.testing.assert_array_equal(default, batches["standard"])
    assert batches["reference"].shape == default.shape
    assert not np.array_equal(batches["reference"], default)


def test_bad_eval_resize_names_the_setting():
    from absl import flags

    from spos_tf.train import __main__ as train

    with pytest.raises(ValueError, match="eval_resize.*'opencv'"):
        DataConfig(eval_resize="opencv").validate()
    with pytest.raises(ValueError, match="eval_resize must be one of"):
        preprocess.preprocess_for_eval(tf.zeros([4, 4, 3], tf.uint8), 2, 1.0, eval_resize="cv2")
    fv = flags.FlagValues()
    train.define_flags(fv)
    with pytest.raises(flags.IllegalFlagValueError, match="eval_resize"):
        fv(["train", "--workdir=/x", "--eval_resize=opencv"])
    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(["train", "--workdir=/x", "--eval_resize=reference", "--preprocessing=reference"])
    assert train.config_from_flags(fv).validate().data.eval_resize == "reference"


def _write_fixture():  # pragma: no cover - needs OpenCV, run by hand (see the module docstring)
    import cv2

    arrays = {"cv2_version": np.array(cv2.__version__)}
    for name, case in CASES.items():
        height, width, seed, _, whole = case
        out_h, out_w = _output_size(case)
        out = cv2.resize(
            pattern(height, width, seed), (out_w, out_h), interpolation=cv2.INTER_LINEAR
        )
        if whole:
            arrays[f"{name}_out"] = out
        else:
            summary = _summary(out)
            arrays[f"{name}_sha256"] = np.array(summary["sha256"])
            arrays[f"{name}_row_sums"] = summary["row_sums"]
            arrays[f"{name}_col_sums"] = summary["col_sums"]
    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({os.path.getsize(FIXTURE)} bytes) with cv2 {cv2.__version__}")


if __name__ == "__main__":
    sys.exit(_write_fixture())
