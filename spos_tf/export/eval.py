"""Comparison of exported models with the Keras network they came from: the exported models'
``uint8`` input data, a runner per format, and the report's statistics (max |logit difference|,
top-1 accuracy, top-1 agreement).

Cost: one pass over the evaluation images; per batch one Keras call and one call per runner.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.export.config import INPUT_NAME, SIGNATURE


def to_uint8(images):
    """Evaluation-pipeline images (normalised) back on the 0..255 scale, rounded to ``uint8``."""
    from spos_tf.data import MEAN_RGB, STDDEV_RGB

    pixels = images * tf.constant(STDDEV_RGB, tf.float32) + tf.constant(MEAN_RGB, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def uint8_dataset(
    data, role: str, batch_size: int, limit: Optional[int] = None, *, repeat: bool = False
):
    """``(uint8 images [B, S, S, 3], labels)`` batches of ``role`` as the exported models take
    them: the evaluation pipeline's images, rounded back to the 0..255 scale."""
    from spos_tf.data import build_dataset

    ds = build_dataset(data, role, batch_size, training=False, seed=0, repeat=repeat)
    if limit is not None:
        ds = ds.unbatch().take(limit).batch(batch_size)
    return ds.map(lambda x, y: (to_uint8(x), y))


class Stats:
    """Running max |logit difference| to Keras, top-1 accuracy and agreement of one format."""

    def __init__(self):
        self.max_diff, self.correct, self.agree, self.count = 0.0, 0, 0, 0

    def add(self, logits, reference, labels):
        logits = np.asarray(logits, np.float32)
        self.max_diff = max(self.max_diff, float(np.max(np.abs(logits - reference))))
        top1 = logits.argmax(-1)
        self.correct += int((top1 == labels).sum())
        self.agree += int((top1 == reference.argmax(-1)).sum())
        self.count += len(labels)

    def record(self) -> dict:
        return {
            "max_abs_diff": self.max_diff,
            "accuracy": self.correct / max(self.count, 1),
            "top1_agreement": self.agree / max(self.count, 1),
        }


def evaluate(reference_fn, runners: dict, batches) -> tuple:
    """One pass over ``batches``: ``(Keras accuracy, image count, {name: Stats record})``.

    Raises:
      ValueError: ``batches`` is empty.
    """
    stats = {name: Stats() for name in runners}
    correct = count = 0
    for images, labels in batches:
        labels = labels.numpy()
        reference = reference_fn(images)["logits"].numpy()
        correct += int((reference.argmax(-1) == labels).sum())
        count += len(labels)
        for name, runner in runners.items():
            stats[name].add(runner(images.numpy()), reference, labels)
    if count == 0:
        raise ValueError("the evaluation split is empty")
    return correct / count, count, {name: s.record() for name, s in stats.items()}


def interpreter(
    model_content: Optional[bytes] = None,
    *,
    model_path: Optional[str] = None,
    num_threads: Optional[int] = None,
):
    """A LiteRT interpreter (``ai_edge_litert.interpreter.Interpreter``) of a TFLite flatbuffer,
    given as bytes or as a file: the one place spos_tf runs TFLite models (the export checks,
    the latency tables, their tests). ``tf.lite.Interpreter`` is scheduled for deletion.

    Raises:
      ImportError: LiteRT (``ai-edge-litert``, pinned in requirements.txt) is not installed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ImportError(
            "spos_tf runs TFLite models through LiteRT (the ai-edge-litert package), which is "
            "not installed: pip install -r requirements.txt"
        ) from e
    return Interpreter(model_content=model_content, model_path=model_path, num_threads=num_threads)


def saved_model_runner(path: str):
    """``uint8 images -> logits`` of a SavedModel's serving signature."""
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures[SIGNATURE]
    return lambda images: signature(**{INPUT_NAME: tf.constant(images)})["logits"].numpy()


def tflite_runner(content: bytes):
    """``uint8 images -> logits`` of a TFLite flatbuffer's serving signature (batch resized per
    call)."""
    runner = interpreter(content).get_signature_runner(SIGNATURE)
    return lambda images: runner(**{INPUT_NAME: images})["logits"]


__all__ = [
    "Stats",
    "evaluate",
    "interpreter",
    "saved_model_runner",
    "tflite_runner",
    "to_uint8",
    "uint8_dataset",
]
