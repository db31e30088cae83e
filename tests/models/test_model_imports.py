"""The float model code never imports quantization: no module under spos_tf/models/ or
spos_tf/spaces/ imports TF-MOT or spos_tf.quant, at any level (also inside functions, also as
``from spos_tf import quant``). Quantization wraps from outside, in spos_tf.build. Nor does it
import a later stage (train, search, export, rank, latency, pipeline, the reference import, the
reports) or the composition module spos_tf.build: those build on models/, not the reverse."""

import ast
from pathlib import Path

import numpy as np
import pytest

import spos_tf
from spos_tf import spaces

ROOT = Path(__file__).resolve().parents[2]
FLOAT_PACKAGES = ("spos_tf/models", "spos_tf/spaces")
LATER_STAGES = tuple(
    f"spos_tf.{stage}"
    for stage in (
        "build",
        "train",
        "search",
        "export",
        "rank",
        "latency",
        "pipeline",
        "import_reference",
        "report_quant",
    )
)
FORBIDDEN = ("tensorflow_model_optimization", "spos_tf.quant") + LATER_STAGES


def imported_modules(source: str) -> set:
    """Every module an ``import`` or ``from ... import`` anywhere in ``source`` names, with the
    names a ``from`` import binds (``from spos_tf import quant`` -> ``spos_tf.quant``)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden(source: str) -> list:
    return sorted(
        name
        for name in imported_modules(source)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )


def test_the_checker_sees_imports_at_any_level():
    assert forbidden("import tensorflow_model_optimization as tfmot") == [
        "tensorflow_model_optimization"
    ]
    assert forbidden("def f():\n    if x:\n        from spos_tf.quant.apply import q\n") == [
        "spos_tf.quant.apply",
        "spos_tf.quant.apply.q",
    ]
    assert forbidden("from spos_tf import quant") == ["spos_tf.quant"]
    assert forbidden("def f():\n    from spos_tf.search.data import arch_index\n") == [
        "spos_tf.search.data",
        "spos_tf.search.data.arch_index",
    ]
    assert forbidden("from spos_tf import train as t") == ["spos_tf.train"]
    assert forbidden("from spos_tf import quantity\nimport spos_tf.quantx") == []


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(ROOT).as_posix() for d in FLOAT_PACKAGES for p in (ROOT / d).rglob("*.py")
    ),
)
def test_float_model_code_does_not_import_quantization(path):
    assert forbidden((ROOT / path).read_text()) == []


def test_float_builders_refuse_a_quantized_space_without_its_wrappers():
    from spos_tf.models import standalone, supernet

    space = spaces.get("resnet18_mixed_precision", image_size=8, num_classes=10)
    assert space.quantized
    with pytest.raises(ValueError, match="spos_tf.build_supernet"):
        supernet.build_supernet(space)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="spos_tf.build_standalone"):
        standalone.build_standalone(space, arch)
    assert (
        spos_tf.build_supernet.__module__ == spos_tf.build_standalone.__module__ == "spos_tf.build"
    )
