"""Under ``eval_resize=reference`` the input pipeline decodes JPEGs as PIL does (the authors'
release reads images with PIL through torchvision's ImageFolder loader): libjpeg's accurate
integer IDCT, not TF's default fast one (issue 22 items 4 and 6).

JPEGs are generated here with PIL; PIL's own decoding is the expectation.
"""

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.data import DataConfig, build_dataset, preprocess_for_eval
from spos_tf.data.sources import open_source

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """``root/<index>/<index>.jpg``: one class per image (labels give the index), odd sizes,
    4:2:0 and 4:4:4 chroma subsampling, textured content (the IDCTs differ most on detail)."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    files = []
    for i, (w, h) in enumerate([(64, 48), (45, 70), (50, 50), (81, 37)]):
        yy, xx = np.mgrid[0:h, 0:w]
        pixels = np.stack([xx * 4 % 256, yy * 5 % 256, (xx + yy) * 3 % 256], -1).astype(float)
        pixels = np.clip(pixels + rng.normal(0, 30, pixels.shape), 0, 255).astype(np.uint8)
        (root / f"{i}").mkdir()
        path = root / f"{i}" / f"{i}.jpg"
        Image.fromarray(pixels).save(path, quality=85, subsampling=[2, 0][i % 2])
        files.append(path)
    return root, files


def pil_rgb(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_accurate_decode_is_pil_bit_for_bit_and_tf_default_is_not(jpeg_folder):
    root, files = jpeg_folder
    source = open_source(DataConfig(name=f"folder:{root}"))
    for path in files:
        encoded = tf.io.read_file(str(path))
        accurate = source.decode(encoded, "INTEGER_ACCURATE").numpy()
        np.testing.assert_array_equal(accurate, pil_rgb(path), err_msg=str(path))
    # The reason for the option: TF's default JPEG decoding is not PIL's.
    default = source.decode(tf.io.read_file(str(files[0]))).numpy()
    assert np.abs(default.astype(int) - pil_rgb(files[0])).max() > 0


@pytest.mark.parametrize("eval_resize", ["reference", "standard"])
def test_pipeline_eval_images_start_from_pil_pixels_under_eval_resize_reference(
    jpeg_folder, eval_resize
):
    root, files = jpeg_folder
    config = DataConfig(
        name=f"folder:{root}",
        test_split="train",
        image_size=32,
        eval_crop_fraction=0.875,
        preprocessing="reference",
        eval_resize=eval_resize,
        cache=False,
    )
    got = {}
    for x, y in build_dataset(config, "test", 8, training=False, seed=0):
        got.update(zip(y.numpy().tolist(), x.numpy()))
    assert sorted(got) == list(range(len(files)))
    differs = 0
    for i, path in enumerate(files):
        want = preprocess_for_eval(
            tf.constant(pil_rgb(path)), 32, 0.875, "reference", eval_resize
        ).numpy()
        if eval_resize == "reference":
            np.testing.assert_array_equal(got[i], want, err_msg=str(path))
        else:
            differs += int(np.abs(got[i] - want).max() > 0)
    if eval_resize == "standard":  # standard keeps TF's default (fast) decoding
        assert differs > 0
