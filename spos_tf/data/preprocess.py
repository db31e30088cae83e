"""Pure TensorFlow image preprocessing shared by the input pipeline and exported models.

Every function here is a graph-safe ``tf`` function of its inputs (no Python state, no global RNG):
evaluation preprocessing is :func:`preprocess_for_eval`, which an exported model can apply to raw
``uint8`` images to reproduce the pipeline exactly; training augmentation draws all randomness from
an explicit stateless ``seed`` (shape ``[2]`` int), so an example's augmentation is a function of
(pipeline seed, example counter) and a resumed run replays it.

Normalisation constants (``MEAN_RGB``, ``STDDEV_RGB``) are the ImageNet channel statistics on the
0..255 scale, ``(0.485, 0.456, 0.406) * 255`` and ``(0.229, 0.224, 0.225) * 255``, used for every
data set (grey-scale images are replicated to three channels first), so a model does not depend on
which data set produced its weights: ``x = (image - MEAN_RGB) / STDDEV_RGB``.

``preprocessing="reference"`` (:func:`finish`) replaces that last step by what the authors' PyTorch
release feeds its networks (its ``ToBGRTensor``): BGR channel order, float 0..255, no mean/std
normalisation. Networks imported from the release (``spos_tf.import_reference``) need it. It
also makes the training colour jitter the release's (:func:`reference_color_jitter`).
``eval_resize="reference"`` (:func:`preprocess_for_eval`) makes the evaluation resize the
release's too: the shorter side to 256 with OpenCV's fixed-point bilinear on ``uint8``
(:func:`opencv_resize_uint8`, bit-exact), then a centre crop of 224.
"""

from __future__ import annotations

import tensorflow as tf

from spos_tf.data.config import EVAL_RESIZES, PREPROCESSINGS  # see finish(), preprocess_for_eval()

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # (123.675, 116.28, 103.53)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)  # (58.395, 57.12, 57.375)
COLOR_JITTER = 0.4  # brightness, contrast and saturation factors drawn from [0.6, 1.4]
CROP_AREA = (0.08, 1.0)  # random-resized-crop: fraction of the image area
CROP_ASPECT = (3 / 4, 4 / 3)  # random-resized-crop: width / height
RESIZE_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights in units of 1/2048


def to_rgb(image: tf.Tensor) -> tf.Tensor:
    """``[..., H, W, 1 or 3]`` -> ``[..., H, W, 3]`` (grey-scale is replicated), dtype kept."""
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels is None:  # unknown statically: decide at run time
        return tf.cond(
            tf.equal(tf.shape(image)[-1], 1),
            lambda: tf.image.grayscale_to_rgb(image[..., :1]),
            lambda: image[..., :3],
        )
    raise ValueError(f"expected 1 or 3 channels, got image shape {image.shape}")


def normalize(image: tf.Tensor) -> tf.Tensor:
    """``(float(image) - MEAN_RGB) / STDDEV_RGB`` for images on the 0..255 scale; float32."""
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(MEAN_RGB, tf.float32)) / tf.constant(STDDEV_RGB, tf.float32)


def finish(image: tf.Tensor, preprocessing: str = "standard") -> tf.Tensor:
    """The last step of every pipeline: an RGB image on the 0..255 scale -> network input.

    Args:
      image: ``[..., H, W, 3]`` RGB, any real dtype, 0..255.
      preprocessing: ``"standard"``: :func:`normalize` (ImageNet mean/std, RGB);
        ``"reference"``: the authors' release, BGR float32 on 0..255 without normalisation.

    Returns:
      float32 ``[..., H, W, 3]``.

    Raises:
      ValueError: unknown ``preprocessing``.
    """
    if preprocessing == "standard":
        return normalize(image)
    if preprocessing == "reference":
        return tf.reverse(tf.cast(image, tf.float32), axis=[-1])
    raise ValueError(f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}")


def center_crop_and_resize(image: tf.Tensor, image_size: int, crop_fraction: float = 1.0):
    """Central square of ``crop_fraction`` x the shorter side, bilinearly resized to ``image_size``.

    Works on ``[H, W, C]`` and ``[B, H, W, C]``; returns float32 on the input's scale.
    """
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    side = tf.cast(
        tf.math.round(crop_fraction * tf.cast(tf.minimum(height, width), tf.float32)), tf.int32
    )
    side = tf.maximum(side, 1)
    image = tf.image.crop_to_bounding_box(
        image, (height - side) // 2, (width - side) // 2, side, side
    )
    return tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), method="bilinear")


def preprocess_for_eval(
    image: tf.Tensor,
    image_size: int | None = None,
    crop_fraction: float = 1.0,
    preprocessing: str = "standard",
    eval_resize: str = "standard",
) -> tf.Tensor:
    """Evaluation preprocessing: raw image -> float32 network input (normalised, or as
    ``preprocessing`` says: see :func:`finish`).

    Args:
      image: ``uint8`` (or any real dtype on the 0..255 scale) ``[H, W, C]`` or ``[B, H, W, C]``,
        ``C`` 1 or 3.
      image_size: output side; ``None`` keeps the input size (no crop, no resize), which is what a
        model exported for inputs already at its resolution uses.
      crop_fraction: see :func:`center_crop_and_resize`; ignored when ``image_size`` is ``None``.
      preprocessing: ``"standard"`` or ``"reference"`` (:func:`finish`).
      eval_resize: ``"standard"``: :func:`center_crop_and_resize` (crop the central
        ``crop_fraction`` of the shorter side, then resize in float); ``"reference"``: the
        authors' release, :func:`reference_resize_and_center_crop` (resize the shorter side to
        ``round(image_size / crop_fraction)``, 256 for ImageNet's 224 and 0.875, with OpenCV's
        fixed-point bilinear on ``uint8``, then centre-crop ``image_size``). Ignored when
        ``image_size`` is ``None``.

    Returns:
      ``float32 [..., image_size, image_size, 3]``, ``(image - MEAN_RGB) / STDDEV_RGB`` (standard).

    Raises:
      ValueError: unknown ``preprocessing`` or ``eval_resize``.
    """
    if eval_resize not in EVAL_RESIZES:
        raise ValueError(f"eval_resize must be one of {EVAL_RESIZES}, got {eval_resize!r}")
    image = to_rgb(image)
    if image_size is not None:
        if eval_resize == "reference":
            image = reference_resize_and_center_crop(image, image_size, crop_fraction)
        else:
            image = center_crop_and_resize(image, image_size, crop_fraction)
    return finish(image, preprocessing)


def reference_resize_size(height, width, short_side: int):
    """The release's ``OpencvResize`` target: ``(new_height, new_width)``, int32 scalars.

    The shorter side becomes ``short_side``; the longer one ``int(short_side / short * long +
    0.5)``, computed in float64 as the release's Python does (a square image stays square).
    """
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    size = tf.constant(short_side, tf.float64)
    wide = tf.cast(size / h * w + 0.5, tf.int32)  # height is the shorter side (height < width)
    tall = tf.cast(size / w * h + 0.5, tf.int32)  # otherwise width is set to short_side
    landscape = tf.less(tf.cast(height, tf.int32), tf.cast(width, tf.int32))
    new_height = tf.where(landscape, short_side, tall)
    new_width = tf.where(landscape, wide, short_side)
    return new_height, new_width


def _opencv_taps(src: tf.Tensor, dst: tf.Tensor):
    """OpenCV's bilinear source index and fractional weight per output position of one axis:
    ``f = float32((d + 0.5) * scale - 0.5)`` with ``scale = 1 / (dst / src)`` in float64, then
    ``s = floor(f)``, ``f -= s`` in float32 (``cv::resize``'s table for ``INTER_LINEAR``)."""
    scale = 1.0 / (tf.cast(dst, tf.float64) / tf.cast(src, tf.float64))
    f = tf.cast((tf.range(dst, dtype=tf.float64) + 0.5) * scale - 0.5, tf.float32)
    s = tf.floor(f)
    return tf.cast(s, tf.int32), f - s


def _fixed_point(weight: tf.Tensor) -> tf.Tensor:
    """``saturate_cast<short>(w * 2048)``: round half to even (``cvRound``), int32."""
    return tf.cast(tf.round(weight * float(1 << RESIZE_COEF_BITS)), tf.int32)


def opencv_resize_uint8(image: tf.Tensor, height, width) -> tf.Tensor:
    """``cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)`` on ``uint8``,
    bit for bit, in TensorFlow ops.

    OpenCV's fixed-point scheme: per axis, source coordinate ``(d + 0.5) * scale - 0.5`` (half-pixel
    centres), integer index ``s = floor`` and weights ``round(2048 * (1 - f))``,
    ``round(2048 * f)`` (11 bits). Horizontally, positions left of the first pixel or right of the
    last take that pixel alone (weights 2048, 0); the pass keeps the exact ``int`` sums
    ``S = p0 * a0 + p1 * a1`` (at most 255 * 2048). Vertically, rows ``s`` and ``s + 1`` are
    clamped into the image but keep their unclamped weights ``b0, b1``, and the result is OpenCV's
    ``uint8`` rounding ``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2 >> 2``, saturated to
    0..255 (the same formula in its SIMD and scalar code, so the result does not depend on the CPU).
    An exact 2x reduction, which OpenCV hands to ``INTER_AREA``, gives the same pixels.

    Matches OpenCV 4.10.0 and 5.1.0 (``opencv-python-headless`` wheels) exactly, max abs
    difference 0, on random images of many sizes (the pinned fixture and how it was measured:
    tests/data/test_eval_resize.py). Not ``tf.image.resize`` followed by rounding, which differs by a
    grey level here and there.

    Args:
      image: ``[H, W, C]`` or ``[B, H, W, C]``, ``uint8`` or any integer dtype on 0..255 (floats
        are rounded and clipped to 0..255 first).
      height, width: output size (ints or int32 scalars), at least 1.

    Returns:
      ``uint8 [..., height, width, C]``.

    Cost: two gathers and a few integer element-wise ops on ``H x width`` then
    ``height x width`` pixels: measured 2-3 ms for 500x375 -> 341x256 on one CPU core of a
    2-core x86-64 machine in a ``tf.function``, 5-8x ``center_crop_and_resize``.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype.is_floating:
        image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
    image = tf.cast(image, tf.int32)
    shape = tf.shape(image)
    src_h, src_w = shape[-3], shape[-2]
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)

    sx, fx = _opencv_taps(src_w, width)
    outside = tf.logical_or(sx < 0, sx >= src_w - 1)  # a single source pixel, weights (2048, 0)
    fx = tf.where(outside, 0.0, fx)
    sx = tf.clip_by_value(sx, 0, src_w - 1)
    a0 = _fixed_point(1.0 - fx)[:, None]
    a1 = _fixed_point(fx)[:, None]
    rows = (
        tf.gather(image, sx, axis=-2) * a0
        + tf.gather(image, tf.minimum(sx + 1, src_w - 1), axis=-2) * a1
    )  # [..., H, width, C], exact

    sy, fy = _opencv_taps(src_h, height)
    b0 = _fixed_point(1.0 - fy)[:, None, None]
    b1 = _fixed_point(fy)[:, None, None]
    top = tf.gather(rows, tf.clip_by_value(sy, 0, src_h - 1), axis=-3)
    bottom = tf.gather(rows, tf.clip_by_value(sy + 1, 0, src_h - 1), axis=-3)
    out = (
        tf.bitwise.right_shift(tf.bitwise.right_shift(top, 4) * b0, 16)
        + tf.bitwise.right_shift(tf.bitwise.right_shift(bottom, 4) * b1, 16)
        + 2
    )
    return tf.cast(tf.clip_by_value(tf.bitwise.right_shift(out, 2), 0, 255), tf.uint8)


def reference_crop_offsets(height, width, size: int):
    """torchvision ``CenterCrop(size)``'s top-left corner: ``int(round((h - size) / 2.))`` and
    the same for the width (Python's ``round``: halves to even), int32 scalars."""

    def offset(side):
        return tf.cast(tf.round(tf.cast(side - size, tf.float64) / 2.0), tf.int32)

    return offset(tf.cast(height, tf.int32)), offset(tf.cast(width, tf.int32))


def reference_resize_and_center_crop(
    image: tf.Tensor, image_size: int, crop_fraction: float = 0.875
) -> tf.Tensor:
    """The release's evaluation transform, ``OpencvResize(256)`` then ``CenterCrop(224)``, for
    ``image_size`` 224 and ``crop_fraction`` 0.875; generally: resize the shorter side to
    ``short = round(image_size / crop_fraction)`` (:func:`reference_resize_size`) with
    :func:`opencv_resize_uint8`, then crop the central ``image_size`` square at
    :func:`reference_crop_offsets`.

    Args:
      image: ``[H, W, C]`` or ``[B, H, W, C]`` on 0..255 (``uint8``; see
        :func:`opencv_resize_uint8` for other dtypes).

    Returns:
      float32 ``[..., image_size, image_size, C]`` with integer values 0..255 (not normalised).

    Cost: one :func:`opencv_resize_uint8` to the ``short``-side size (256 x ~341 for a 4:3
    ImageNet image), then a slice.
    """
    short = int(round(image_size / crop_fraction))
    shape = tf.shape(image)
    new_h, new_w = reference_resize_size(shape[-3], shape[-2], short)
    resized = opencv_resize_uint8(image, new_h, new_w)
    top, left = reference_crop_offsets(new_h, new_w, image_size)
    cropped = tf.image.crop_to_bounding_box(resized, top, left, image_size, image_size)
    return tf.cast(cropped, tf.float32)


def _seeds(seed: tf.Tensor, num: int):
    return tf.unstack(tf.random.experimental.stateless_split(seed, num))


def light_augment(image: tf.Tensor, image_size: int, seed: tf.Tensor) -> tf.Tensor:
    """Small random translation: resize to ``image_size``, zero-pad by ``max(1, image_size // 8)``
    on each side, stateless random crop back to ``image_size``. No flip.

    Args:
      image: ``[H, W, 3]`` on the 0..255 scale.
      seed: ``int [2]`` stateless seed.

    Returns:
      float32 ``[image_size, image_size, 3]`` on the 0..255 scale (not normalised).
    """
    pad = max(1, image_size // 8)
    image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), method="bilinear")
    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(image, (image_size, image_size, 3), seed=seed)


CIFAR_PAD = 4  # cifar_augment: zero padding on each side (torchvision RandomCrop(32, padding=4))


def cifar_augment(image: tf.Tensor, image_size: int, seed: tf.Tensor) -> tf.Tensor:
    """The standard CIFAR augmentation (what NAS-Bench-201 trains with, torchvision's
    ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``): zero-pad ``CIFAR_PAD`` = 4
    pixels on each side, stateless random crop back to ``image_size`` (uniform over the 9 x 9
    offsets of a 32x32 image), stateless random horizontal flip (probability 1/2).

    The image is first resized bilinearly to ``image_size`` x ``image_size`` unless its static
    shape already is that. A bilinear resize to the same size is the identity (pixels unchanged,
    tested), so 32x32 CIFAR images at 32 keep their pixels either way (decoded folder images
    have no static size; a run-time ``tf.cond`` skipping the no-op resize measured about 4 %
    slower in benchmarks/cifar_folder_pipeline.py).

    Args:
      image: ``[H, W, 3]`` on the 0..255 scale.
      seed: ``int [2]`` stateless seed; the crop and the flip use two seeds split from it, so the
        result is a function of ``(image, seed)`` only.

    Returns:
      float32 ``[image_size, image_size, 3]`` on the 0..255 scale (not normalised).
    """
    crop_seed, flip_seed = _seeds(tf.cast(seed, tf.int64), 2)
    image = tf.cast(image, tf.float32)
    if image.shape[0] != image_size or image.shape[1] != image_size:  # incl. unknown sizes
        image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    pad = CIFAR_PAD
    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(image, (image_size, image_size, 3), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def crop_window(image_shape: tf.Tensor, seed: tf.Tensor):
    """The random-resized crop's window for an image of ``image_shape``: ``(begin, size)``.

    Area 8-100 % of the image, aspect (width / height) 3/4-4/3, drawn by
    ``tf.image.stateless_sample_distorted_bounding_box`` (10 attempts, else the whole image) from
    the stateless ``seed``; depends on the image only through its shape, so the window of an
    encoded JPEG (``tf.image.extract_jpeg_shape``) is the window of its decoded pixels.

    Args:
      image_shape: ``int [3]``, ``[H, W, C]``.
      seed: ``int [2]`` stateless seed.

    Returns:
      ``begin``, ``size``: ``int32 [3]`` each, ``[y, x, 0]`` and ``[h, w, -1]`` (``tf.slice`` form).
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT,
        area_range=CROP_AREA,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def decode_jpeg_window(
    encoded: tf.Tensor, begin: tf.Tensor, size: tf.Tensor, channels: int = 3
) -> tf.Tensor:
    """Decodes only the window ``(begin, size)`` (as :func:`crop_window` returns) of a JPEG.

    ``tf.image.decode_and_crop_jpeg``: libjpeg skips the rows below the window and the blocks left
    and right of it, so the cost scales with the window, not the image. Cropped alone, libjpeg
    treats the window's side columns as image borders when it upsamples 4:2:0 chroma (measured:
    up to 29 grey levels off in the first and last columns), so this decodes one more column on
    each side where the image has one and drops it: the pixels then equal
    ``tf.io.decode_jpeg(encoded, channels)[y:y + h, x:x + w]`` exactly (tested on 4:2:0 and 4:4:4
    JPEGs).

    Returns:
      ``uint8 [h, w, channels]``.
    """
    width = tf.image.extract_jpeg_shape(encoded)[1]
    left = tf.minimum(begin[1], 1)
    right = tf.minimum(width - begin[1] - size[1], 1)
    window = tf.stack([begin[0], begin[1] - left, size[0], size[1] + left + right])
    image = tf.image.decode_and_crop_jpeg(encoded, window, channels=channels)
    return image[:, left : left + size[1]]


def imagenet_augment(
    image: tf.Tensor, image_size: int, seed: tf.Tensor, jitter: str = "standard"
) -> tf.Tensor:
    """The SPOS ImageNet recipe: random-resized crop (area 8-100 %, aspect 3/4-4/3), horizontal
    flip, colour jitter 0.4 (brightness, contrast, saturation, factors uniform in [0.6, 1.4]).

    Args:
      image: ``[H, W, 3]`` on the 0..255 scale.
      seed: ``int [2]`` stateless seed.
      jitter: ``"standard"``: the three adjustments in that fixed order on floats in [0, 1]
        (``tf.image.adjust_contrast``: per-channel mean; ``adjust_saturation``: HSV);
        ``"reference"``: the release's torchvision ``ColorJitter`` on PIL images,
        :func:`reference_color_jitter` (random order, PIL's grey-level formulas on ``uint8``).
        The training pipeline passes its ``preprocessing``.

    Returns:
      float32 ``[image_size, image_size, 3]`` in [0, 255] (not normalised).
    """
    crop_seed, *rest = _seeds(seed, 5)
    begin, size = crop_window(tf.shape(image), crop_seed)
    return _augment_crop(tf.slice(image, begin, size), image_size, rest, jitter)


def imagenet_augment_jpeg(
    encoded: tf.Tensor,
    image_size: int,
    seed: tf.Tensor,
    channels: int = 3,
    jitter: str = "standard",
) -> tf.Tensor:
    """:func:`imagenet_augment` of a JPEG that decodes only the crop's window.

    Same window (it depends on the shape only, read from the JPEG header by
    ``tf.image.extract_jpeg_shape``), same flip and jitter for the same ``seed``, so the result
    equals ``imagenet_augment(to_rgb(tf.io.decode_jpeg(encoded, channels)), image_size, seed)``;
    decoding costs the window's share of the image (on average about half of it: the crop's
    area is uniform in 8-100 %).

    Args:
      encoded: scalar ``string``, JPEG bytes.
      channels: ``tf.image.decode_and_crop_jpeg``'s ``channels`` (0: the file's own).
    """
    crop_seed, *rest = _seeds(seed, 5)
    shape = tf.image.extract_jpeg_shape(encoded)
    if channels:
        shape = tf.concat([shape[:2], [channels]], 0)
    begin, size = crop_window(shape, crop_seed)
    return _augment_crop(
        to_rgb(decode_jpeg_window(encoded, begin, size, channels)), image_size, rest, jitter
    )


def _pil_grey(image: tf.Tensor) -> tf.Tensor:
    """PIL's ``convert("L")`` of int32 RGB ``[..., 3]``: ``(19595 R + 38470 G + 7471 B + 2^15)
    >> 16`` (ITU-R 601-2 luma in 16-bit fixed point), int32 ``[..., 1]``."""
    weights = tf.constant([19595, 38470, 7471], tf.int32)
    return tf.bitwise.right_shift(
        tf.reduce_sum(image * weights, axis=-1, keepdims=True) + 32768, 16
    )


def _pil_blend(degenerate: tf.Tensor, image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL's ``Image.blend(degenerate, image, factor)`` on int32 0..255 values: ``degenerate +
    factor * (image - degenerate)`` in float32, clipped to [0, 255], truncated to an integer."""
    mixed = tf.cast(degenerate, tf.float32) + factor * tf.cast(image - degenerate, tf.float32)
    return tf.cast(tf.clip_by_value(mixed, 0.0, 255.0), tf.int32)


def reference_color_jitter(image: tf.Tensor, factors: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
    """The release's ``transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)``
    on a PIL image (torchvision's PIL path: ``ImageEnhance.Brightness``, ``.Contrast``,
    ``.Color``, each an ``Image.blend`` that returns ``uint8``), applied in ``order``.

    - brightness ``b``: ``blend(0, x, b)``;
    - contrast ``c``: ``blend(m, x, c)``, ``m = int(mean(grey(x)) + 0.5)`` over the image;
    - saturation ``s``: ``blend(grey(x), x, s)`` per pixel;

    with ``grey`` PIL's fixed-point luma (:func:`_pil_grey`) and ``blend`` PIL's float32
    interpolation, clipped and truncated to ``uint8`` (:func:`_pil_blend`).

    Args:
      image: ``[H, W, 3]`` RGB on 0..255; rounded to integers first (a PIL image is ``uint8``).
      factors: float32 ``[3]``: brightness, contrast, saturation factors.
      order: int32 ``[3]``: a permutation of ``0, 1, 2`` (brightness, contrast, saturation);
        torchvision draws a random one per image.

    Returns:
      float32 ``[H, W, 3]`` with integer values 0..255.
    """
    x = tf.cast(tf.clip_by_value(tf.math.round(tf.cast(image, tf.float32)), 0.0, 255.0), tf.int32)
    factors = tf.cast(factors, tf.float32)

    def brightness(x):
        return _pil_blend(tf.zeros_like(x), x, factors[0])

    def contrast(x):
        mean = tf.reduce_mean(tf.cast(_pil_grey(x), tf.float64))
        return _pil_blend(tf.fill(tf.shape(x), tf.cast(mean + 0.5, tf.int32)), x, factors[1])

    def saturation(x):
        return _pil_blend(tf.broadcast_to(_pil_grey(x), tf.shape(x)), x, factors[2])

    for step in range(3):
        x = tf.switch_case(
            order[step],
            [lambda x=x: brightness(x), lambda x=x: contrast(x), lambda x=x: saturation(x)],
        )
    return tf.cast(x, tf.float32)


def _augment_crop(crop: tf.Tensor, image_size: int, seeds, jitter: str = "standard") -> tf.Tensor:
    """Resize, flip and colour jitter of :func:`imagenet_augment` after its crop."""
    flip_seed, b_seed, c_seed, s_seed = seeds
    image = tf.image.resize(tf.cast(crop, tf.float32), (image_size, image_size), method="bilinear")
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    low, high = 1.0 - COLOR_JITTER, 1.0 + COLOR_JITTER
    if jitter == "reference":
        factors = tf.stack(
            [tf.random.stateless_uniform([], s, low, high) for s in (b_seed, c_seed, s_seed)]
        )
        order_seed = tf.random.experimental.stateless_fold_in(s_seed, 1)
        order = tf.cast(tf.argsort(tf.random.stateless_uniform([3], order_seed)), tf.int32)
        return reference_color_jitter(image, factors, order)
    if jitter != "standard":
        raise ValueError(f"jitter must be 'standard' or 'reference', got {jitter!r}")
    image = image / 255.0
    image = image * tf.random.stateless_uniform([], b_seed, low, high)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image = tf.image.adjust_contrast(image, tf.random.stateless_uniform([], c_seed, low, high))
    image = tf.clip_by_value(image, 0.0, 1.0)
    image = tf.image.adjust_saturation(image, tf.random.stateless_uniform([], s_seed, low, high))
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0
