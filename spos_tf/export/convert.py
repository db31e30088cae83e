"""Conversion of a stand-alone network: the serving signature, the SavedModel, the integer twins
the TFLite converter reads, and the TFLite conversion itself.

What the converter does with fake-quantized weights (TF 2.21, measured; ``Optimize.DEFAULT``,
int8 builtins): a ``FakeQuantWithMinMaxVars`` weight of ``num_bits <= 4`` is stored as packed
``INT4`` (per tensor, the QAT grid) only when the conv's output is fake-quantized as well
(conv [+ bias] [+ ReLU] + FakeQuant); a conv followed by a BN multiplication, an addition or no
output quantizer gets its weights re-quantized to INT8 per channel by post-training
quantization. A network trained with ``fold_bn`` (:mod:`spos_tf.quant.fold`) has exactly that
pattern; its two integer formats: ``tflite_int4`` (the <= 4-bit weights as INT4) and
``tflite_int8`` (the same weight values on an 8-bit grid, stored as INT8).

Cost: one SavedModel save per source network (seconds for the quick-start networks) and one
conversion per integer format with ``calib_images`` calibration images.
"""

from __future__ import annotations

import warnings

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.export.config import INPUT_NAME, SIGNATURE
from spos_tf.export.eval import uint8_dataset


def serving_module(model, image_size: int, preprocessing: str = "standard") -> tf.Module:
    """A ``tf.Module`` whose ``serve`` is the export signature of ``model`` (see
    :mod:`spos_tf.export.run`); ``preprocessing`` is the run's ``DataConfig.preprocessing``
    (``"reference"``: BGR 0..255).

    Only the model's variables are tracked (not its Keras layers), so saving writes the
    signature's graph and the weights, and no Keras-specific metadata.
    """
    from spos_tf.data import preprocess_for_eval

    module = tf.Module()
    module.model_variables = list(model.variables)
    control = getattr(model, "bn_control", None)
    if control is not None:
        module.bn_momentum = control.momentum

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name=INPUT_NAME)
        ]
    )
    def serve(images):
        logits = model(preprocess_for_eval(images, preprocessing=preprocessing), training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    module.serve = serve
    return module


def save(module, path: str) -> None:
    """Writes ``module`` (a :func:`serving_module`) as a SavedModel with its signature."""
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})


def integer_twin(space, arch, model, *, packed: bool):
    """The network an integer converter reads, and notes on how it differs from ``model``.

    - Activations searched below 8 bits run at 8 bits (TFLite runs 8-bit activations only): a
      twin whose activation quantizers run at 8 bits with the same range statistics.
    - A network trained with ``space.fold_bn``: ``packed`` (``tflite_int4``) converts it as it
      is; not ``packed`` (``tflite_int8``) re-expresses its <= 4-bit weights on an 8-bit grid
      (:func:`spos_tf.quant.fold.set_int8_storage`), so that the converter stores the same
      values as INT8.

    Returns:
      ``(network, [notes])``; ``network is model`` when nothing differs.

    Raises:
      RuntimeError: the twin's variables do not match the network's one-to-one.
    """
    from spos_tf.quant import fold

    low = [b for b in space.act_bits if b < 8] if space.quantized else []
    drop_outputs = getattr(space, "fold_bn", False) and not packed
    if not low and not drop_outputs:
        return model, []
    import spos_tf as api

    notes = []
    twin_space, twin_arch = space, arch
    if low:
        twin_space = space.replace(act_bits=(8,))
        genes = {k: list(g) for k, g in zip(space.searched_genes, arch.genes) if k != "abits"}
        twin_arch = twin_space.make(**genes)
        searched = sorted({c["abits"] for c in space.decode(arch)})
        notes.append(
            f"activations searched at {searched} bits run at 8 bits in TFLite (same "
            f"range statistics); the integer model's outputs differ from the QAT "
            f"network's by that"
        )
    twin = api.build_standalone(twin_space, twin_arch)
    src, dst = model.variables, twin.variables
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
        raise RuntimeError(
            "the integer twin has other variables than the network; "
            "spos_tf.quant.apply changed its wrapping contract"
        )
    for a, b in zip(src, dst):
        b.assign(a)
    if drop_outputs:
        n = fold.set_int8_storage(twin, True)
        notes.append(
            f"the weights of the BN-folded convs ({n}) searched at <= 4 bits are the "
            f"same values expressed on an 8-bit grid: stored as INT8 (the int4 file's "
            f"reference)"
        )
    return twin, notes


def convert(saved_model_dir: str, quantize: bool, representative=None) -> bytes:
    """TFLite flatbuffer of a SavedModel's signature: float, or integer (``Optimize.DEFAULT``,
    int8 builtins, ``representative`` calibration data)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[SIGNATURE]
    )
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():  # the calibrator's tf.lite.Interpreter deprecation warning
        warnings.simplefilter("ignore")
        return converter.convert()


def representative(data, images: int, batch_size: int):
    """The integer converter's representative data: the first ``images`` training images of
    the ``calib`` role as ``uint8``, one a call."""

    def generate():
        ds = uint8_dataset(data, "calib", batch_size, repeat=True)
        seen = 0
        for batch, _ in ds:
            for image in batch.numpy():
                if seen >= images:
                    return
                seen += 1
                yield {INPUT_NAME: image[None]}

    return generate


__all__ = ["convert", "integer_twin", "representative", "save", "serving_module"]
