r"""Export of one architecture's stand-alone network: SavedModel, TFLite float, int8 and int4.

The library behind ``python -m spos_tf.export``. Example::

    config = ExportConfig(checkpoint="/tmp/qs_retrain", out="/tmp/qs_export")
    report = run(config)          # what export_report.json holds

What is exported: always the *stand-alone* network of the architecture
(:func:`spos_tf.build_standalone`), never the supernet: TFLite cannot convert the supernet's
``tf.Case`` (``tf.switch_case``). Its weights come from ``config.checkpoint``, a
``spos_tf.train`` run directory (:mod:`spos_tf.runs.run_dir`):

- a retrained stand-alone run (``config.json`` has an ``arch``): its final weights and BN
  statistics; ``--arch`` may be omitted (it must equal the run's when given);
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
  per channel. In a network trained without ``fold_bn`` the converter folds the BN that follows
  each conv into its fake-quantized weights and re-quantizes them, so weights searched at <= 4
  bits are INT8 too (the per-layer table of the report shows what is stored).
- ``tflite_int4`` -> ``model_int4.tflite`` (quantized spaces with ``fold_bn``, see
  :mod:`spos_tf.quant.fold`): as ``tflite_int8``, but the weights searched at <= 4 bits are
  stored as packed INT4 on their QAT grid (the BN is folded into them before the fake
  quantization, during retraining); ``tflite_int8`` then holds the same weight values as INT8.
  Why the two differ and what the converter needs: :mod:`spos_tf.export.convert`.
- ``export_report.json``: per format the file size, the max |difference| of its logits to the Keras
  model's on the evaluation images, its top-1 accuracy and top-1 agreement with Keras; for TFLite
  files the storage type of every weight tensor (read from the interpreter's tensor details and,
  for the packed INT4 type the interpreter shows as int8, from the flatbuffer); with
  ``tflite_int4``, its size relative to ``tflite_int8`` (``size_vs_int8``).

Modules: :mod:`spos_tf.export.config` (settings, file names), :mod:`spos_tf.export.convert`
(signature, SavedModel, integer twins, conversion), :mod:`spos_tf.export.inspect` (weight
storage per layer), :mod:`spos_tf.export.eval` (uint8 data, runners, statistics); this module
loads the run and orchestrates. Their public names are importable from here too.

Evaluation images: the ``eval_split`` role (``test`` by default: data the search never saw)
through the evaluation pipeline, rounded to ``uint8`` (the exported models' input), streamed in
batches; the Keras reference is the restored network applied to exactly those images.

Checks before anything is written (a failing check raises and leaves ``config.out`` as it was,
not even created): the settings, the run directory and its checkpoint, the architecture, the
formats, and the data set. Cost: one SavedModel save (also when only TFLite is asked for: the
converters read it from a temporary folder) and one conversion (and, for an integer twin, one more
save) per TFLite format (seconds for the quick-start network), plus one pass over the evaluation
images per format.

Why one module of this size: the orchestration of one export (load, recalibrate, convert, compare,
report); conversion, inspection and comparison live in ``export_convert``, ``export_inspect`` and
``export_eval``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from spos_tf import costs as costs_lib
from spos_tf.runs import run_dir
from spos_tf.export.config import (
    FILES,
    FORMATS,
    INPUT_CONTRACT,
    INPUT_NAME,
    REPORT_FILE,
    SIGNATURE,
    ExportConfig,
    ExportError,
)
from spos_tf.export.convert import convert, integer_twin, representative, save, serving_module
from spos_tf.export.eval import evaluate, saved_model_runner, tflite_runner, uint8_dataset
from spos_tf.export.inspect import int4_note, summary, weight_storage
from spos_tf.spaces.space import Architecture, SearchSpace, arch_from_any

__all__ = [
    "ExportConfig",
    "ExportError",
    "FORMATS",
    "FILES",
    "REPORT_FILE",
    "Prepared",
    "prepare",
    "export",
    "serving_module",
    "run",
    "uint8_dataset",
    "weight_storage",
]


# ------------------------------------------------------------------------------- loading
@dataclasses.dataclass
class Prepared:
    """Everything an export needs, loaded and checked (nothing written yet)."""

    space: SearchSpace
    arch: Architecture
    model: object  # the stand-alone tf_keras model, weights loaded
    run_config: dict
    data: object  # spos_tf.data.DataConfig at the model's resolution
    formats: tuple
    source: str  # "standalone" or "supernet"
    recalibrated_batches: int = 0


def _resolve_arch(space: SearchSpace, value: str, what: str) -> Architecture:
    example = str(space.make(**{k: [0] * space.num_blocks for k in space.searched_genes}))
    try:
        return arch_from_any(space, value)
    except (ValueError, OSError) as e:
        raise ExportError(
            f"bad {what}={value!r}: {e}. It takes the text form of an architecture of space "
            f"{space.name!r} ({space.num_blocks} choice blocks, e.g. {example!r}) or the path of "
            f"a JSON file with an 'arch' field (the search's best.json)"
        ) from None


def _formats(config: ExportConfig, space: SearchSpace) -> tuple:
    folded = space.quantized and space.fold_bn
    supported = tuple(
        f
        for f in FORMATS
        if not (space.quantized and f == "tflite") and (folded or f != "tflite_int4")
    )
    if config.formats is None:
        return supported
    if space.quantized and "tflite" in config.formats:
        raise ExportError(
            f"--formats=tflite (float TFLite) is not available for the quantized space "
            f"{space.name!r}: the converter turns its fake-quant ops into quantize/dequantize "
            f"pairs that the TFLite interpreter rejects. Use "
            f"--formats={','.join(supported)}"
        )
    if "tflite_int4" in config.formats and not folded:
        raise ExportError(
            f"--formats=tflite_int4 needs a quantized network trained with BN folded into its "
            f"weights (space {space.name!r}, fold_bn={getattr(space, 'fold_bn', False)}): "
            f"retrain it with --fold_bn, or use --formats={','.join(supported)}"
        )
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
        raise ExportError(
            f"--space={config.space!r} differs from the space {space.name!r} of the "
            f"run in --checkpoint={checkpoint!r}; drop --space or pick that run"
        )
    run_arch = run_config.get("arch")
    if run_arch:
        arch = space.parse(run_arch)
        if config.arch is not None:
            wanted = _resolve_arch(space, config.arch, "--arch")
            if wanted != arch:
                raise ExportError(
                    f"--checkpoint={checkpoint!r} holds the stand-alone network of {str(arch)!r}, "
                    f"not --arch={str(wanted)!r}. Drop --arch, or pass the supernet's run "
                    f"directory to export {str(wanted)!r} with inherited weights"
                )
        source = "standalone"
    else:
        if config.arch is None:
            raise ExportError(
                f"--checkpoint={checkpoint!r} holds a supernet: pass --arch (text or the search's "
                f"best.json) to export that architecture with inherited weights"
            )
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
        prepared.model = api.build_standalone(
            space,
            arch,
            supernet=supernet,
            seed=int(run_config.get("seed", 0)),
            bn_momentum=float(run_config.get("bn_momentum", 0.9)),
        )
        prepared.recalibrated_batches = _recalibrate(prepared.model, space, data, config)
        _print(
            stream,
            f"Inherited the weights of {arch} from the supernet; recalibrated BN on "
            f"{prepared.recalibrated_batches * config.calib_batch_size} training images",
        )
    return prepared


def _calib_dataset(data, config: ExportConfig):
    from spos_tf.data import build_dataset

    return build_dataset(
        data,
        "calib",
        config.calib_batch_size,
        training=False,
        seed=0,
        repeat=True,
        drop_remainder=True,
    ).take(config.calib_batches)


def _recalibrate(model, space: SearchSpace, data, config: ExportConfig) -> int:
    """Exact BN statistics (and quantizer ranges) of an inherited network on calibration images."""
    from spos_tf.models.evaluate import recalibrate_bn

    if space.quantized:
        from spos_tf.quant.apply import reset_quant_ranges

        reset_quant_ranges(model)
    return recalibrate_bn(model, _calib_dataset(data, config), config.calib_batches)


# ------------------------------------------------------------------------------- writing
def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(path)
            for f in files
        )
    return os.path.getsize(path)


def _print(stream, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def run(config: ExportConfig, stream=None) -> dict:
    """Exports as ``config`` says; returns the report (also written to ``export_report.json``).

    Raises:
      ExportError, run_dir.RunDirError, run_dir.CheckpointError, FileNotFoundError, ValueError:
        bad input, found before anything is written (see :func:`prepare`).
    """
    stream = sys.stdout if stream is None else stream
    start = time.monotonic()
    return export(prepare(config, stream), config, stream, start=start)


INTEGER_FORMATS = {"tflite_int8": False, "tflite_int4": True}  # format -> packed (INT4) weights


def _convert_formats(prepared: Prepared, config: ExportConfig, tmp: str, saved: str):
    """``({format: flatbuffer}, {format: [notes]}, {format: seconds})`` of the TFLite formats."""
    space, model = prepared.space, prepared.model
    contents, notes, seconds = {}, {}, {}
    for fmt in prepared.formats:
        t0 = time.monotonic()
        if fmt == "tflite":
            contents[fmt] = convert(saved, quantize=False)
        elif fmt in INTEGER_FORMATS:
            twin, notes[fmt] = integer_twin(
                space, prepared.arch, model, packed=INTEGER_FORMATS[fmt]
            )
            source = saved
            if twin is not model:
                source = os.path.join(tmp, f"{fmt}_twin")
                save(serving_module(twin, space.image_size, prepared.data.preprocessing), source)
            contents[fmt] = convert(
                source,
                quantize=True,
                representative=representative(
                    prepared.data, config.calib_images, config.calib_batch_size
                ),
            )
        else:
            continue
        seconds[fmt] = round(time.monotonic() - t0, 2)
    return contents, notes, seconds


def export(
    prepared: Prepared, config: ExportConfig, stream=None, *, start: float | None = None
) -> dict:
    """Writes the formats of ``prepared`` into ``config.out`` and evaluates them (the second half
    of :func:`run`; ``prepared`` may also be assembled by hand around any stand-alone network).

    Returns:
      The report written to ``export_report.json``.
    """
    start = time.monotonic() if start is None else start
    out = os.fspath(config.out)
    space, arch, model = prepared.space, prepared.arch, prepared.model
    os.makedirs(out, exist_ok=True)
    _print(
        stream,
        f"Exporting the stand-alone network {arch} ({space.name}, "
        f"{costs_lib.macs(space, arch) / 1e6:.2f}M MACs) to {out}: "
        f"{', '.join(prepared.formats)}",
    )

    module = serving_module(model, space.image_size, prepared.data.preprocessing)
    results = {}
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        saved = os.path.join(tmp, FILES["saved_model"])
        t0 = time.monotonic()
        save(module, saved)
        save_seconds = round(time.monotonic() - t0, 2)
        contents, notes, seconds = _convert_formats(prepared, config, tmp, saved)
        for fmt in prepared.formats:
            results[fmt] = {"file": FILES[fmt], "seconds": seconds.get(fmt, save_seconds)}
            if fmt in contents:
                _print(stream, f"  {fmt}: converted in {results[fmt]['seconds']:.1f} s")
        runners = {}
        if "saved_model" in prepared.formats:
            target = os.path.join(out, FILES["saved_model"])
            run_dir.replace_path(saved, target)
            runners["saved_model"] = saved_model_runner(target)
        for fmt, content in contents.items():
            run_dir.atomic_write_bytes(os.path.join(out, FILES[fmt]), content)
            runners[fmt] = tflite_runner(content)

    batches = uint8_dataset(
        prepared.data, config.eval_split, config.eval_batch_size, config.eval_images
    )
    keras_accuracy, count, stats = evaluate(module.serve, runners, batches)
    for fmt in prepared.formats:
        path = os.path.join(out, FILES[fmt])
        results[fmt].update(path=path, size_bytes=_size(path), **stats[fmt])
        if fmt in contents:
            rows = weight_storage(contents[fmt], model, space, arch)
            results[fmt]["weights"] = rows
            results[fmt]["storage_summary"] = summary(rows)
    for fmt in INTEGER_FORMATS:
        if fmt not in results:
            continue
        results[fmt].update(
            activations="int8 (uint8 image input, float32 outputs)",
            ranges=(
                "fake-quant (QAT) ranges of the quantized layers, post-training calibration "
                "for the other tensors"
                if space.quantized
                else "post-training calibration"
            ),
            calib_images=config.calib_images,
        )
        if space.quantized:
            notes[fmt].append(int4_note(results[fmt]["weights"], folded=space.fold_bn))
        results[fmt]["notes"] = [n for n in notes[fmt] if n]
    if "tflite_int4" in results and "tflite_int8" in results:
        results["tflite_int4"]["size_vs_int8"] = round(
            results["tflite_int4"]["size_bytes"] / results["tflite_int8"]["size_bytes"], 4
        )

    report = {
        "space": space.name,
        "space_overrides": prepared.run_config.get("space_overrides", {}),
        "arch": str(arch),
        "costs": costs_lib.table(space).all(arch),
        "checkpoint": os.fspath(config.checkpoint),
        "weights_from": prepared.source,
        "bn_recalibration_images": prepared.recalibrated_batches * config.calib_batch_size,
        "signature": {
            "name": SIGNATURE,
            "inputs": {INPUT_NAME: INPUT_CONTRACT},
            "input_shape": [None, space.image_size, space.image_size, 3],
            "outputs": {
                "logits": f"float32 [batch, {space.num_classes}]",
                "probabilities": "softmax of logits",
            },
        },
        "eval": {"split": config.eval_split, "images": count, "keras_accuracy": keras_accuracy},
        "formats": results,
        "seconds": round(time.monotonic() - start, 1),
        "config": config.to_dict(),
    }
    run_dir.atomic_write_text(
        os.path.join(out, REPORT_FILE), json.dumps(report, indent=2, sort_keys=True) + "\n"
    )
    _print(
        stream,
        f"Top-1 on {count} {config.eval_split} images: Keras "
        f"{keras_accuracy:.4f}; "
        + "; ".join(
            f"{fmt} {r['accuracy']:.4f} (max |diff| {r['max_abs_diff']:.2g}, "
            f"{r['size_bytes'] / 1024:.0f} KiB)"
            for fmt, r in results.items()
        ),
    )
    _print(stream, f"Report: {os.path.join(out, REPORT_FILE)}")
    return report
