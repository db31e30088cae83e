"""Which network a run trains: the supernet of a space, or the stand-alone network of one
architecture, built from a run config (the ``config.json`` of a ``spos_tf.train`` workdir).

Every app that rebuilds a run's model (training, its evaluation twin, search, export, the
reference import) goes through :func:`build_from_config` (via ``spos_tf.runs.run_dir.build_model``), so the supernet/stand-alone choice and
the config fields it reads (``space``, ``space_overrides``, ``arch``, ``seed``, ``bn_momentum``)
are in one place. Cost: allocates every variable of the model (all choices, for a supernet).
"""

from __future__ import annotations

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from spos_tf.spaces.space import Architecture, SearchSpace
from spos_tf.models.standalone import build_standalone
from spos_tf.models.supernet import build_supernet


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
