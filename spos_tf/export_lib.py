r"""Export of one architecture's stand-alone network: SavedModel, TFLite float, TFLite int8.

The library behind ``python -m spos_tf.export``. Example::

    config = ExportConfig(checkpoint="/tmp/qs_retrain", out="/tmp/qs_export")
    report = run(config)          # what export_report.json holds

What is exported: always the *stand-alone* network of the architecture (:func:`spos_tf.build_standalone`),
never the supernet: TFLite cannot convert the supernet's ``tf.Case`` (``tf.switch_case``). Its
weights come from ``config.checkpoint``, a ``spos_tf.train`` run directory (:mod:`spos_tf.run_dir`):

- a retrained stand-alone run (``config.json`` has an ``arch``): its final weights and BN statistics;
  ``--arch`` may be omitted (it must equal the run's when given);
- a supernet run (``arch`` null): ``--arch`` is required; the weights are inherited
  (:func:`spos_tf.inherit`) and the BN statistics (and, in a quantized space, the activation
  quantizers' ranges) are recalibrated exactly on ``calib_images`` training images, as the search
  scores candidates.

Serving signature (every format): ``serving_default(images)`` with ``images`` a ``uint8`` tensor
``[batch, S, S, 3]``: RGB images already at the model's resolution ``S = space.image_size`` (resize
and crop on the caller's side; replicate grey-scale images to 3 channels), on the 0..255 scale. The
signature applies the training pipeline's evaluation normalisation inside
(:func:`spos_tf.data.preprocess_for_eval` with no resize: ``(image - MEAN_RGB) / STDDEV_RGB``), so a
deployment feeds raw pixels. Outputs: ``logits`` (float32 ``[batch, num_classes]``) and
``probabilities`` (their softmax). The batch dimension is dynamic in the SavedModel and in the
TFLite files (``interpreter.get_signature_runner()`` resizes it per call).

Formats and files in ``config.out`` (nothing else there is touched):

- ``saved_model`` -> ``saved_model/``: TensorFlow SavedModel of the signature (float32, exact).
- ``tflite`` -> ``model_float.tflite``: float32 TFLite (float spaces only: the converter turns
  the fake-quant ops of a quantized network into quantize/dequantize pairs that the interpreter
  rejects).
- ``tflite_int8`` -> ``model_int8.tflite``: integer TFLite (``Optimize.DEFAULT``, int8 builtins;
  ``uint8`` image input, float32 outputs). Ranges: a quantized (QAT) network's fake-quant ranges
  where it has them; everything else by post-training calibration on ``calib_images`` training
  images (the ``calib`` data role: training images with evaluation preprocessing). Activations
  are always 8-bit in TFLite: a network searched with lower activation bits is converted from a
  twin whose activation quantizers run at 8 bits with the same range statistics. Weights: INT8
  per channel; fake-quantized weights at <= 4 bits would be INT4 if the converter kept their
  grid, but it folds the BN that follows each conv into the weights first and re-quantizes them
  to INT8 (the per-layer table of the report shows what is stored).
- ``export_report.json``: per format the file size, the max |difference| of its logits to the Keras
  model's on the evaluation images, its top-1 accuracy and top-1 agreement with Keras; for TFLite
  files the storage type of every weight tensor (read from the interpreter's tensor details and,
  for the packed INT4 type the interpreter shows as int8, from the flatbuffer).

Evaluation images: the ``eval_split`` role (``test`` by default: data the search never saw)
through the evaluation pipeline, rounded to ``uint8`` (the exported models' input), streamed in
batches; the Keras reference is the restored network applied to exactly those images.

Checks before anything is written (a failing check raises and leaves ``config.out`` as it was,
not even created): the settings, the run directory and its checkpoint, the architecture, the
formats, and the data set. Cost: one SavedModel save (also when only TFLite is asked for: the
converters read it from a temporary folder) and one conversion per TFLite format (seconds for the
quick-start network), plus one pass over the evaluation images per format.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import tempfile
import time
import warnings
from typing import Optional

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf import costs as costs_lib
from spos_tf import run_dir
from spos_tf.space import Architecture, SearchSpace, arch_from_any

FORMATS = ("saved_model", "tflite", "tflite_int8")
FILES = {"saved_model": "saved_model", "tflite": "model_float.tflite",
         "tflite_int8": "model_int8.tflite"}
REPORT_FILE = "export_report.json"
SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAMES = ("logits", "probabilities")
EVAL_SPLITS = ("holdout", "test")
WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}
INPUT_CONTRACT = ("uint8 [batch, S, S, 3] RGB images at the model resolution S, 0..255; "
                  "normalised inside: (image - MEAN_RGB) / STDDEV_RGB")

__all__ = ["ExportConfig", "ExportError", "FORMATS", "FILES", "REPORT_FILE", "Prepared",
           "prepare", "export", "serving_module", "run", "uint8_dataset", "weight_storage"]


class ExportError(ValueError):
    """Bad input found before anything was written (settings, architecture, formats)."""


# ------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Settings of one export (the flags of ``spos_tf.export``).

    Attributes:
      checkpoint: a ``spos_tf.train`` run directory: a retrained stand-alone network, or a
        supernet (then the weights are inherited).
      out: output folder (created; only the files of :data:`FILES` and the report are written).
      space: registered space name; optional, must equal the run's when given.
      arch: architecture text or a JSON file with an ``"arch"`` field (``best.json``); required
        for a supernet run, optional (must match) for a stand-alone run.
      formats: subset of :data:`FORMATS`; None: all that the space supports (no ``tflite`` for a
        quantized space).
      data_dir: TFDS data directory (None: the run's).
      calib_images, calib_batch_size: training images (``calib`` role, in stored order) for the
        int8 post-training calibration and, for inherited weights, the BN recalibration.
      eval_split: ``"test"`` (default: data the search never saw) or ``"holdout"`` (the search's
        held-out split, biased upwards for a searched architecture): the report's images.
      eval_images: use the first this many images of the split (None: all of it).
      eval_batch_size: batch size of the report's evaluation.
    """

    checkpoint: str = ""
    out: str = ""
    space: Optional[str] = None
    arch: Optional[str] = None
    formats: Optional[tuple] = None
    data_dir: Optional[str] = None
    calib_images: int = 512
    calib_batch_size: int = 64
    eval_split: str = "test"
    eval_images: Optional[int] = None
    eval_batch_size: int = 100

    @property
    def calib_batches(self) -> int:
        return -(-self.calib_images // self.calib_batch_size)

    def validate(self) -> "ExportConfig":
        """Checks every field without touching files; returns ``self``.

        Raises:
          ExportError: naming the flag and quoting the bad value.
        """
        for name in ("checkpoint", "out"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ExportError(f"--{name} is required")
        if self.formats is not None:
            formats = tuple(self.formats)
            unknown = [f for f in formats if f not in FORMATS]
            if unknown or not formats or len(set(formats)) != len(formats):
                raise ExportError(f"--formats must be distinct names from {', '.join(FORMATS)}; "
                                  f"got {','.join(map(str, formats)) or '(empty)'}")
        for name, low in (("calib_images", 1), ("calib_batch_size", 1), ("eval_batch_size", 1)):
            _check_int(name, getattr(self, name), low)
        if self.eval_images is not None:
            _check_int("eval_images", self.eval_images, 1)
        if self.eval_split not in EVAL_SPLITS:
            raise ExportError(f"--eval_split must be one of {', '.join(EVAL_SPLITS)}, got "
                              f"{self.eval_split!r}")
        if self.arch is not None and (not isinstance(self.arch, str) or not self.arch.strip()):
            raise ExportError(f"--arch must be an architecture text or a JSON file, got "
                              f"{self.arch!r}")
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["checkpoint"], d["out"] = os.fspath(self.checkpoint), os.fspath(self.out)
        return run_dir.normalized(d)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ExportError(f"--{name} must be an integer >= {low}, got {value!r}")


# ------------------------------------------------------------------------------- loading
@dataclasses.dataclass
class Prepared:
    """Everything an export needs, loaded and checked (nothing written yet)."""

    space: SearchSpace
    arch: Architecture
    model: object           # the stand-alone tf_keras model, weights loaded
    run_config: dict
    data: object            # spos_tf.data.DataConfig at the model's resolution
    formats: tuple
    source: str             # "standalone" or "supernet"
    recalibrated_batches: int = 0


def _resolve_arch(space: SearchSpace, value: str, what: str) -> Architecture:
    example = str(space.make(**{k: [0] * space.num_blocks for k in space.searched_genes}))
    try:
        return arch_from_any(space, value)
    except (ValueError, OSError) as e:
        raise ExportError(
            f"bad {what}={value!r}: {e}. It takes the text form of an architecture of space "
            f"{space.name!r} ({space.num_blocks} choice blocks, e.g. {example!r}) or the path of "
            f"a JSON file with an 'arch' field (the search's best.json)") from None


def _formats(config: ExportConfig, space: SearchSpace) -> tuple:
    supported = tuple(f for f in FORMATS if not (space.quantized and f == "tflite"))
    if config.formats is None:
        return supported
    if space.quantized and "tflite" in config.formats:
        raise ExportError(
            f"--formats=tflite (float TFLite) is not available for the quantized space "
            f"{space.name!r}: the converter turns its fake-quant ops into quantize/dequantize "
            f"pairs that the TFLite interpreter rejects. Use --formats=saved_model,tflite_int8")
    return tuple(config.formats)


def prepare(config: ExportConfig, stream=None) -> Prepared:
    """Loads and checks the run, the architecture, the weights and the data; writes nothing
    (except that ``spos_digits`` is prepared in its data_dir on first use).

    Raises:
      ExportError: bad settings, architecture or formats.
      run_dir.RunDirError / run_dir.CheckpointError: not a run directory, no or a damaged
        checkpoint.
      FileNotFoundError, ValueError: the data set cannot be opened.
    """
    import spos_tf as api
    from spos_tf.data import DataConfig

    config = config.validate()
    out = os.fspath(config.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportError(f"--out={out!r} is a file, not a folder; choose another path")
    checkpoint = os.fspath(config.checkpoint)
    try:
        run_config = run_dir.load_run_config(checkpoint)
    except run_dir.RunDirError as e:
        raise run_dir.RunDirError(f"--checkpoint: {e}") from None
    space = run_dir.space_from_config(run_config)
    if config.space is not None and config.space != space.name:
        raise ExportError(f"--space={config.space!r} differs from the space {space.name!r} of the "
                          f"run in --checkpoint={checkpoint!r}; drop --space or pick that run")
    run_arch = run_config.get("arch")
    if run_arch:
        arch = space.parse(run_arch)
        if config.arch is not None:
            wanted = _resolve_arch(space, config.arch, "--arch")
            if wanted != arch:
                raise ExportError(
                    f"--checkpoint={checkpoint!r} holds the stand-alone network of {str(arch)!r}, "
                    f"not --arch={str(wanted)!r}. Drop --arch, or pass the supernet's run "
                    f"directory to export {str(wanted)!r} with inherited weights")
        source = "standalone"
    else:
        if config.arch is None:
            raise ExportError(
                f"--checkpoint={checkpoint!r} holds a supernet: pass --arch (text or the search's "
                f"best.json) to export that architecture with inherited weights")
        arch = _resolve_arch(space, config.arch, "--arch")
        source = "supernet"
    formats = _formats(config, space)

    _, model, _ = run_dir.restore_model(checkpoint)  # RunDirError / CheckpointError
    data = DataConfig(**run_config.get("data", {}))
    changes = {"image_size": space.image_size}
    if config.data_dir is not None:
        changes["data_dir"] = config.data_dir
    data = dataclasses.replace(data, **changes)
    from spos_tf.data import dataset_info
    dataset_info(data)  # opens the data set: fails here, before anything is written
    prepared = Prepared(space, arch, model, run_config, data, formats, source)
    if source == "supernet":
        supernet = model
        prepared.model = api.build_standalone(space, arch, supernet=supernet,
                                              seed=int(run_config.get("seed", 0)),
                                              bn_momentum=float(run_config.get("bn_momentum", 0.9)))
        prepared.recalibrated_batches = _recalibrate(prepared.model, space, data, config)
        _print(stream, f"Inherited the weights of {arch} from the supernet; recalibrated BN on "
                       f"{prepared.recalibrated_batches * config.calib_batch_size} training images")
    return prepared


def _calib_dataset(data, config: ExportConfig):
    from spos_tf.data import build_dataset

    return build_dataset(data, "calib", config.calib_batch_size, training=False, seed=0,
                         repeat=True, drop_remainder=True).take(config.calib_batches)


def _recalibrate(model, space: SearchSpace, data, config: ExportConfig) -> int:
    """Exact BN statistics (and quantizer ranges) of an inherited network on calibration images."""
    from spos_tf.evaluate import recalibrate_bn

    if space.quantized:
        from spos_tf.quant.apply import reset_quant_ranges
        reset_quant_ranges(model)
    return recalibrate_bn(model, _calib_dataset(data, config), config.calib_batches)


# ------------------------------------------------------------------------------- serving
def serving_module(model, image_size: int, preprocessing: str = "standard") -> tf.Module:
    """A ``tf.Module`` whose ``serve`` is the export signature of ``model`` (see module doc);
    ``preprocessing`` is the run's ``DataConfig.preprocessing`` (``"reference"``: BGR 0..255).

    Only the model's variables are tracked (not its Keras layers), so saving writes the
    signature's graph and the weights, and no Keras-specific metadata.
    """
    from spos_tf.data import preprocess_for_eval

    module = tf.Module()
    module.model_variables = list(model.variables)
    control = getattr(model, "bn_control", None)
    if control is not None:
        module.bn_momentum = control.momentum

    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.uint8,
                                                name=INPUT_NAME)])
    def serve(images):
        logits = model(preprocess_for_eval(images, preprocessing=preprocessing), training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    module.serve = serve
    return module


def _save(module, path: str) -> None:
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})


def _int8_twin(prepared: Prepared):
    """The network the int8 converter reads: the model itself, or for a quantized space with
    activation bits below 8 a twin with 8-bit activation quantizers (same weights and range
    statistics; TFLite runs 8-bit activations only). Returns ``(model, note or None)``."""
    space, arch, model = prepared.space, prepared.arch, prepared.model
    low = [b for b in space.act_bits if b < 8]
    if not space.quantized or not low:
        return model, None
    import spos_tf as api

    space8 = space.replace(act_bits=(8,))
    genes = {k: list(g) for k, g in zip(space.searched_genes, arch.genes) if k != "abits"}
    twin = api.build_standalone(space8, space8.make(**genes))
    src, dst = model.variables, twin.variables
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
        raise RuntimeError("the 8-bit activation twin has other variables than the network; "
                           "spos_tf.quant.apply changed its wrapping contract")
    for a, b in zip(src, dst):
        b.assign(a)
    searched = sorted({c["abits"] for c in space.decode(arch)})
    return twin, (f"activations searched at {searched} bits run at 8 bits in TFLite (same range "
                  f"statistics); the int8 model's outputs differ from the QAT network's by that")


# ------------------------------------------------------------------------------- conversion
def _convert(saved_model_dir: str, quantize: bool, representative=None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[SIGNATURE])
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():  # the calibrator's tf.lite.Interpreter deprecation warning
        warnings.simplefilter("ignore")
        return converter.convert()


def _interpreter(content: bytes):
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (ai-edge-litert)
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=content)


def _storage_types(content: bytes) -> dict:
    """Tensor index -> the flatbuffer's TensorType name (e.g. ``INT4``, which the interpreter
    reports as int8) of subgraph 0; {} if the flatbuffer tools are unavailable."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils
    except ImportError:  # pragma: no cover - part of the TF wheel
        return {}
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    return {i: names.get(t.type, str(t.type)) for i, t in enumerate(model.subgraphs[0].tensors)}


def _layer_keys(model, space: SearchSpace, arch: Architecture) -> list:
    """``[(key "holder/prim", bits searched or None)]`` of the model's conv/dw/fc primitives."""
    from spos_tf.blocks import PrimHolder

    decoded = space.decode(arch)
    out = []
    for layer in model.layers:
        if not isinstance(layer, PrimHolder):
            continue
        match = re.match(r"block(\d+)_", layer.name)
        for name, prim_layer in layer.prims.items():
            prim = prim_layer.prim
            if prim.kind not in ("conv", "dw", "fc"):
                continue
            bits = None
            if space.quantized and prim.quantized:
                bits = decoded[int(match.group(1))]["wbits"] if match else space.fixed_bits
            out.append((f"{layer.name}/{name}", bits))
    return out


def _layer_of(tensor_name: str, keys: list):
    for key, bits in keys:
        holder, prim = key.split("/")
        if f"/{holder}/{prim}/" in tensor_name or f"/{holder}/quant_{prim}/" in tensor_name:
            return key, bits
    return None, None


def weight_storage(content: bytes, model=None, space=None, arch=None) -> list:
    """One entry per weight tensor (the filter of every conv, depthwise conv and FC op) of a
    TFLite model: ``{"layer", "op", "tensor", "dtype" (interpreter), "storage" (flatbuffer
    type), "shape", "scales" (1: per tensor, > 1: per channel), "searched_bits"}``.

    A filter produced by a DEQUANTIZE op (weights stored compressed, computed in float) is
    followed to the stored tensor. ``layer`` names the stand-alone network's primitive
    (``"block03_shuffle3x3/conv1"``) when ``model`` is given.
    """
    interpreter = _interpreter(content)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    producers = {out: op for op in ops for out in op["outputs"]}
    storage = _storage_types(content)
    keys = _layer_keys(model, space, arch) if model is not None else []
    rows = []
    for op in ops:
        position = WEIGHT_OPS.get(op["op_name"])
        if position is None or len(op["inputs"]) <= position:
            continue
        index = int(op["inputs"][position])
        producer = producers.get(index)
        if producer is not None and producer["op_name"] == "DEQUANTIZE":
            index = int(producer["inputs"][0])
        d = details[index]
        layer, bits = _layer_of(d["name"], keys)
        rows.append({"layer": layer, "op": op["op_name"], "tensor": d["name"],
                     "dtype": np.dtype(d["dtype"]).name,
                     "storage": storage.get(index, np.dtype(d["dtype"]).name.upper()),
                     "shape": [int(s) for s in d["shape"]],
                     "scales": int(len(d["quantization_parameters"]["scales"])),
                     "searched_bits": bits})
    return rows


# ------------------------------------------------------------------------------- evaluation
def _to_uint8(images):
    from spos_tf.data import MEAN_RGB, STDDEV_RGB

    pixels = images * tf.constant(STDDEV_RGB, tf.float32) + tf.constant(MEAN_RGB, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def uint8_dataset(data, role: str, batch_size: int, limit: Optional[int] = None, *,
                  repeat: bool = False):
    """``(uint8 images [B, S, S, 3], labels)`` batches of ``role`` as the exported models take
    them: the evaluation pipeline's images, rounded back to the 0..255 scale."""
    from spos_tf.data import build_dataset

    ds = build_dataset(data, role, batch_size, training=False, seed=0, repeat=repeat)
    if limit is not None:
        ds = ds.unbatch().take(limit).batch(batch_size)
    return ds.map(lambda x, y: (_to_uint8(x), y))


class _Stats:
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
        return {"max_abs_diff": self.max_diff, "accuracy": self.correct / max(self.count, 1),
                "top1_agreement": self.agree / max(self.count, 1)}


def _evaluate(reference_fn, runners: dict, batches) -> tuple:
    """One pass over ``batches``: Keras accuracy and each runner's :class:`_Stats` record."""
    stats = {name: _Stats() for name in runners}
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


def _saved_model_runner(path: str):
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures[SIGNATURE]
    return lambda images: signature(**{INPUT_NAME: tf.constant(images)})["logits"].numpy()


def _tflite_runner(content: bytes):
    runner = _interpreter(content).get_signature_runner(SIGNATURE)
    return lambda images: runner(**{INPUT_NAME: images})["logits"]


# ------------------------------------------------------------------------------- writing
def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def _replace_dir(tmp: str, path: str) -> None:
    run_dir.remove_path(path)
    os.replace(tmp, path)


def _print(stream, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def _representative(data, config: ExportConfig):
    """The int8 converter's representative data: ``calib_images`` training images, one a call."""
    def generate():
        ds = uint8_dataset(data, "calib", config.calib_batch_size, repeat=True)
        seen = 0
        for images, _ in ds:
            for image in images.numpy():
                if seen >= config.calib_images:
                    return
                seen += 1
                yield {INPUT_NAME: image[None]}

    return generate


def run(config: ExportConfig, stream=None) -> dict:
    """Exports as ``config`` says; returns the report (also written to ``export_report.json``).

    Raises:
      ExportError, run_dir.RunDirError, run_dir.CheckpointError, FileNotFoundError, ValueError:
        bad input, found before anything is written (see :func:`prepare`).
    """
    stream = sys.stdout if stream is None else stream
    start = time.monotonic()
    return export(prepare(config, stream), config, stream, start=start)


def export(prepared: Prepared, config: ExportConfig, stream=None, *,
           start: float | None = None) -> dict:
    """Writes the formats of ``prepared`` into ``config.out`` and evaluates them (the second half
    of :func:`run`; ``prepared`` may also be assembled by hand around any stand-alone network).

    Returns:
      The report written to ``export_report.json``.
    """
    start = time.monotonic() if start is None else start
    out = os.fspath(config.out)
    space, arch, model = prepared.space, prepared.arch, prepared.model
    os.makedirs(out, exist_ok=True)
    _print(stream, f"Exporting the stand-alone network {arch} ({space.name}, "
                   f"{costs_lib.macs(space, arch) / 1e6:.2f}M MACs) to {out}: "
                   f"{', '.join(prepared.formats)}")

    module = serving_module(model, space.image_size, prepared.data.preprocessing)
    results, contents, notes = {}, {}, []
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        saved = os.path.join(tmp, FILES["saved_model"])
        t0 = time.monotonic()
        _save(module, saved)
        save_seconds = round(time.monotonic() - t0, 2)
        for fmt in prepared.formats:
            t0 = time.monotonic()
            if fmt == "tflite":
                contents[fmt] = _convert(saved, quantize=False)
            elif fmt == "tflite_int8":
                twin, note = _int8_twin(prepared)
                source = saved
                if twin is not model:
                    source = os.path.join(tmp, "int8_twin")
                    _save(serving_module(twin, space.image_size, prepared.data.preprocessing),
                          source)
                    notes.append(note)
                contents[fmt] = _convert(source, quantize=True,
                                         representative=_representative(prepared.data, config))
            seconds = save_seconds if fmt == "saved_model" else round(time.monotonic() - t0, 2)
            results[fmt] = {"file": FILES[fmt], "seconds": seconds}
            if fmt in contents:
                _print(stream, f"  {fmt}: converted in {results[fmt]['seconds']:.1f} s")
        runners = {}
        if "saved_model" in prepared.formats:
            target = os.path.join(out, FILES["saved_model"])
            _replace_dir(saved, target)
            runners["saved_model"] = _saved_model_runner(target)
        for fmt, content in contents.items():
            run_dir.atomic_write_bytes(os.path.join(out, FILES[fmt]), content)
            runners[fmt] = _tflite_runner(content)

    batches = uint8_dataset(prepared.data, config.eval_split, config.eval_batch_size,
                            config.eval_images)
    keras_accuracy, count, stats = _evaluate(module.serve, runners, batches)
    for fmt in prepared.formats:
        path = os.path.join(out, FILES[fmt])
        results[fmt].update(path=path, size_bytes=_size(path), **stats[fmt])
        if fmt in contents:
            rows = weight_storage(contents[fmt], model, space, arch)
            results[fmt]["weights"] = rows
            results[fmt]["storage_summary"] = _summary(rows)
    if "tflite_int8" in results:
        results["tflite_int8"].update(
            activations="int8 (uint8 image input, float32 outputs)",
            ranges=("fake-quant (QAT) ranges of the quantized layers, post-training calibration "
                    "for the other tensors" if space.quantized else "post-training calibration"),
            calib_images=config.calib_images)
        if space.quantized:
            notes.append(_int4_note(results["tflite_int8"]["weights"]))
        results["tflite_int8"]["notes"] = [n for n in notes if n]

    report = {
        "space": space.name, "space_overrides": prepared.run_config.get("space_overrides", {}),
        "arch": str(arch), "costs": costs_lib.table(space).all(arch),
        "checkpoint": os.fspath(config.checkpoint), "weights_from": prepared.source,
        "bn_recalibration_images": prepared.recalibrated_batches * config.calib_batch_size,
        "signature": {"name": SIGNATURE, "inputs": {INPUT_NAME: INPUT_CONTRACT},
                      "input_shape": [None, space.image_size, space.image_size, 3],
                      "outputs": {"logits": f"float32 [batch, {space.num_classes}]",
                                  "probabilities": "softmax of logits"}},
        "eval": {"split": config.eval_split, "images": count, "keras_accuracy": keras_accuracy},
        "formats": results,
        "seconds": round(time.monotonic() - start, 1),
        "config": config.to_dict(),
    }
    run_dir.atomic_write_text(os.path.join(out, REPORT_FILE),
                              json.dumps(report, indent=2, sort_keys=True) + "\n")
    _print(stream, f"Top-1 on {count} {config.eval_split} images: Keras "
                   f"{keras_accuracy:.4f}; " + "; ".join(
                       f"{fmt} {r['accuracy']:.4f} (max |diff| {r['max_abs_diff']:.2g}, "
                       f"{r['size_bytes'] / 1024:.0f} KiB)" for fmt, r in results.items()))
    _print(stream, f"Report: {os.path.join(out, REPORT_FILE)}")
    return report


def _summary(rows: list) -> dict:
    out: dict = {}
    for row in rows:
        out[row["storage"]] = out.get(row["storage"], 0) + 1
    return out


def _int4_note(rows: list) -> str:
    low = [r for r in rows if r["searched_bits"] is not None and r["searched_bits"] <= 4]
    packed = [r for r in low if r["storage"] == "INT4"]
    if not low:
        return "no weights were searched at <= 4 bits"
    if len(packed) == len(low):
        return f"all {len(low)} weight tensors searched at <= 4 bits are stored as INT4"
    return (f"{len(low) - len(packed)} of {len(low)} weight tensors searched at <= 4 bits are "
            f"stored as {sorted({r['storage'] for r in low if r['storage'] != 'INT4'})}, not "
            f"INT4: the converter folds the BN after each conv into its fake-quantized weights "
            f"and re-quantizes the result per channel (1-bit sign weights are no FakeQuant op at "
            f"all)")
