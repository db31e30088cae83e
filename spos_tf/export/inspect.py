"""Inspection of a TFLite flatbuffer: how every weight tensor is stored, mapped back to the
stand-alone network's primitives and the bits the search chose for them.

The interpreter reports packed ``INT4`` tensors as ``int8``; the stored type is read from the
flatbuffer itself (``tensorflow.lite.tools.flatbuffer_utils``). Cost: one interpreter and one
flatbuffer parse per call (milliseconds for the quick-start networks).
"""

from __future__ import annotations

import re

import numpy as np

from spos_tf.export.eval import interpreter
from spos_tf.spaces.space import Architecture, SearchSpace

# Op name -> input position of its filter.
WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}


def storage_types(content: bytes) -> dict:
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


def layer_keys(model, space: SearchSpace, arch: Architecture) -> list:
    """``[(key "holder/prim", bits searched or None)]`` of the model's conv/dw/fc primitives."""
    from spos_tf.models.blocks import PrimHolder

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
    interp = interpreter(content)
    details = {d["index"]: d for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # pylint: disable=protected-access
    producers = {out: op for op in ops for out in op["outputs"]}
    storage = storage_types(content)
    keys = layer_keys(model, space, arch) if model is not None else []
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
        rows.append(
            {
                "layer": layer,
                "op": op["op_name"],
                "tensor": d["name"],
                "dtype": np.dtype(d["dtype"]).name,
                "storage": storage.get(index, np.dtype(d["dtype"]).name.upper()),
                "shape": [int(s) for s in d["shape"]],
                "scales": int(len(d["quantization_parameters"]["scales"])),
                "searched_bits": bits,
            }
        )
    return rows


def summary(rows: list) -> dict:
    """``{storage type: number of weight tensors}`` of :func:`weight_storage` rows."""
    out: dict = {}
    for row in rows:
        out[row["storage"]] = out.get(row["storage"], 0) + 1
    return out


def int4_note(rows: list, folded: bool) -> str:
    """One sentence on how the weights searched at <= 4 bits are stored and, where not INT4,
    why (``folded``: the network was trained with BN folded into its weights)."""
    low = [r for r in rows if r["searched_bits"] is not None and r["searched_bits"] <= 4]
    packed = [r for r in low if r["storage"] == "INT4"]
    if not low:
        return "no weights were searched at <= 4 bits"
    if len(packed) == len(low):
        return f"all {len(low)} weight tensors searched at <= 4 bits are stored as INT4"
    stored = sorted({r["storage"] for r in low if r["storage"] != "INT4"})
    text = (
        f"{len(low) - len(packed)} of {len(low)} weight tensors searched at <= 4 bits are "
        f"stored as {stored}, not INT4: "
    )
    if folded:
        return text + (
            "this file stores the folded <= 4-bit weights on an 8-bit grid (the "
            "int4 file's reference)"
        )
    return text + (
        "the converter folds the BN after each conv into its fake-quantized weights "
        "and re-quantizes the result per channel (1-bit sign weights are no "
        "FakeQuant op at all); retrain with --fold_bn (BN folded before the weight "
        "fake quantization) and export tflite_int4"
    )


__all__ = ["WEIGHT_OPS", "int4_note", "layer_keys", "storage_types", "summary", "weight_storage"]
