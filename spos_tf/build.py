"""The networks of a space: the float model of :mod:`spos_tf.models`, wrapped as the space asks.

This is the one place that composes the float model code with the wrappers that change it from
outside (as TF Model Garden's QAT factory wraps a float model): for a quantized space
(``space.quantized``) :func:`build_supernet` and :func:`build_standalone` pass the factory of
:mod:`spos_tf.quant.apply` to the float builders and attach its range reset as the model's
``recalibration_reset`` hook (read by :class:`spos_tf.models.evaluate.PathEvaluator`), so no module
under ``spos_tf/models/`` or ``spos_tf/spaces/`` imports TF-MOT or ``spos_tf.quant``. TF-MOT is
imported only when a quantized space is built. The public ``spos_tf.build_supernet``,
``spos_tf.build_standalone`` and ``spos_tf.build_model`` are this module's functions.

Which network a run trains, the supernet of a space or the stand-alone network of one
architecture, is also decided here: every app that rebuilds a run's model (training, its
evaluation twin, search, export, the reference import) goes through :func:`build_from_config`
(via ``spos_tf.runs.run_dir.build_model``), so the supernet/stand-alone choice and the config
fields it reads (``space``, ``space_overrides``, ``arch``, ``seed``, ``bn_momentum``) are in one
place. Cost: allocates every variable of the model (all choices, for a supernet).
"""

from __future__ import annotations

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from spos_tf.models import standalone as standalone_lib
from spos_tf.models import supernet as supernet_lib
from spos_tf.spaces.space import Architecture, SearchSpace


def build_supernet(space: SearchSpace, seed: int = 0, bn_momentum: float = 0.9):
    """The supernet of ``space`` (:func:`spos_tf.models.supernet.build_supernet`); for a quantized
    space its quantized primitives are wrapped by
    :func:`spos_tf.quant.apply.quantize_supernet` before the variables are created. Call it
    inside a strategy scope for distributed training."""
    if not space.quantized:
        return supernet_lib.build_supernet(space, seed=seed, bn_momentum=bn_momentum)
    from spos_tf.quant import apply

    model = supernet_lib.build_supernet(
        space, seed=seed, bn_momentum=bn_momentum, wrap=apply.quantize_supernet
    )
    model.recalibration_reset = apply.reset_quant_ranges
    return model


def build_standalone(
    space: SearchSpace, arch: Architecture, supernet=None, seed: int = 0, bn_momentum: float = 0.9
):
    """The stand-alone network of ``arch`` (:func:`spos_tf.models.standalone.build_standalone`),
    inheriting ``supernet``'s weights if given. In a quantized space the quantized primitives
    are wrapped at the fixed bit widths ``arch`` chooses
    (:func:`spos_tf.quant.apply.quantize_standalone`; no ``switch_case``), e.g.
    ``build_standalone(space, spos_tf.costs.uniform_arch(space, bits=4))`` for a uniform 4W4A
    network; inheritance then also copies the quantizers' input ranges.

    Raises:
      ValueError: ``arch`` does not belong to ``space`` (wrong length, out-of-range choice).
    """
    if not space.quantized:
        return standalone_lib.build_standalone(space, arch, supernet, seed, bn_momentum)
    from spos_tf.quant import apply

    model = standalone_lib.build_standalone(
        space, arch, supernet, seed, bn_momentum, wrap_layers=apply.quantize_standalone
    )
    model.recalibration_reset = apply.reset_quant_ranges
    return model


def build_model(
    space: SearchSpace, arch: Architecture | None = None, *, seed: int = 0, bn_momentum: float = 0.9
):
    """The (untrained) supernet of ``space`` when ``arch`` is None, else the stand-alone network
    of ``arch``. Call inside ``strategy.scope()`` for distributed use."""
    if arch is None:
        return build_supernet(space, seed=seed, bn_momentum=bn_momentum)
    return build_standalone(space, arch, seed=seed, bn_momentum=bn_momentum)


def build_from_config(config: dict, space: SearchSpace):
    """:func:`build_model` for a run config (``config["arch"]``: text form, or null for the
    supernet) and its ``space`` (``spos_tf.runs.run_dir.space_from_config``).

    Raises:
      ValueError: an architecture that is not of ``space``.
    """
    arch = space.parse(config["arch"]) if config.get("arch") else None
    return build_model(
        space,
        arch,
        seed=int(config.get("seed", 0)),
        bn_momentum=float(config.get("bn_momentum", 0.9)),
    )
