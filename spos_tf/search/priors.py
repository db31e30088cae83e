"""Priors a search may combine with the supernet's accuracy to pick ``best.json``
(``--score=supernet+synflow``, ``supernet+naswot``, ``supernet+synflow+naswot``): the zero-cost
proxies of each evaluated candidate's untrained stand-alone network
(:data:`spos_tf.rank.report.ZERO_COST`), cached in the search's workdir so a resumed or rerun
search computes each one once.

``<workdir>/<name>.json`` (``synflow.json``, ``naswot.json``) holds ``{"seed": s, "scores": {arch
text: score}}``; it is written atomically after every new value, so a killed search loses at most
the one being computed.

NASWOT scores a network on images: :func:`naswot_images`, the first :data:`NASWOT_BATCH` images
of the supernet's training split (the ``calib`` role: evaluation preprocessing, stored order, no
augmentation), the same for every candidate, search and ranking of one supernet's data.

Cost: per new candidate one build of its untrained stand-alone network and one forward and
backward pass of one image (SynFlow, :func:`spos_tf.rank.zero_cost.synflow_of`) or one forward
pass of the batch (NASWOT, :func:`spos_tf.rank.zero_cost.naswot_of`), each about 1 s for the
NAS-Bench-201 proxy networks on 2 CPU cores, in the process that writes the search's files;
NASWOT's images are read once per process, on first use.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

from spos_tf.rank.report import PRIOR_LABELS, SYNFLOW_FILE, SYNFLOW_SEED, ZERO_COST
from spos_tf.runs import run_dir
from spos_tf.spaces.space import SearchSpace

# The images NASWOT's agreement matrix is computed on (the reference's batch size).
NASWOT_BATCH = 128

__all__ = [
    "NASWOT_BATCH",
    "SYNFLOW_FILE",
    "SYNFLOW_SEED",
    "PriorCache",
    "first_calib_batch",
    "naswot_images",
    "prior_caches",
    "zero_cost_of",
]


def first_calib_batch(data, images: int = NASWOT_BATCH):
    """The first ``images`` images of the ``calib`` role of ``data`` (a
    :class:`~spos_tf.data.DataConfig`: its training split, evaluation preprocessing, stored
    order), a float tensor.

    Raises:
      ValueError: the split holds fewer images.
    """
    from spos_tf.data import build_dataset

    batch = build_dataset(data, "calib", images, training=False, seed=0)
    out = next(iter(batch.take(1)))[0]
    if int(out.shape[0]) < images:
        raise ValueError(
            f"NASWOT needs {images} training images; the training split {data.train_split!r} "
            f"holds {int(out.shape[0])}"
        )
    return out


def naswot_images(supernet_dir: str, data_dir: Optional[str] = None):
    """:func:`first_calib_batch` (:data:`NASWOT_BATCH` images) of the data of the supernet run in
    ``supernet_dir``; ``data_dir`` overrides the TFDS directory, as ``--data_dir`` does."""
    from spos_tf.search.tuner import data_config, load_supernet_config

    run_config = load_supernet_config(supernet_dir)
    space = run_dir.space_from_config(run_config)
    return first_calib_batch(data_config(run_config, space, data_dir))


def zero_cost_of(name: str, space: SearchSpace, arch, images=None) -> float:
    """The zero-cost proxy ``name`` (``"synflow"`` or ``"naswot"``) of ``arch``'s untrained
    stand-alone network in ``space``, at :data:`SYNFLOW_SEED`, uncached; NASWOT on ``images``
    (a batch, or a function returning one)."""
    from spos_tf.rank import zero_cost  # TensorFlow: only once a score is needed

    if name == "synflow":
        return zero_cost.synflow_of(space, arch, seed=SYNFLOW_SEED)
    if name == "naswot":
        batch = images() if callable(images) else images
        return zero_cost.naswot_of(space, arch, batch, seed=SYNFLOW_SEED)
    raise ValueError(f"unknown zero-cost proxy {name!r}; one of {', '.join(ZERO_COST)}")


class PriorCache:
    """``cache(arch) -> float``: the zero-cost proxy ``name`` of ``arch``'s untrained stand-alone
    network in ``space`` (built with seed :data:`SYNFLOW_SEED`), read from
    ``<workdir>/<name>.json`` or computed and stored there. ``images``: NASWOT's batch, or a
    function returning it (called once, on the first computed score).

    A file that does not parse, or was computed at another seed, is refused with the fix (delete
    it), never overwritten.
    """

    def __init__(self, workdir: str, space: SearchSpace, name: str = "synflow", images=None):
        if name not in ZERO_COST:
            raise ValueError(f"unknown zero-cost proxy {name!r}; one of {', '.join(ZERO_COST)}")
        self.name, self.space = name, space
        self.path = os.path.join(workdir, f"{name}.json")
        self._images = images
        self.scores: dict = {}
        label = PRIOR_LABELS[name]
        if os.path.exists(self.path):
            try:
                with open(self.path) as f:
                    stored = json.load(f)
                seed, scores = stored["seed"], stored["scores"]
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{self.path} is not a {label} cache of spos_tf.search ({err}); delete it to "
                    "compute the scores again"
                ) from err
            if seed != SYNFLOW_SEED:
                raise ValueError(
                    f"{self.path} holds {label} at seed {seed}, not {SYNFLOW_SEED}; delete it to "
                    "compute the scores again"
                )
            self.scores = {str(k): float(v) for k, v in scores.items()}

    def _batch(self):
        if callable(self._images):
            self._images = self._images()
        return self._images

    def __call__(self, arch) -> float:
        key = str(arch)
        if key not in self.scores:
            images = self._batch() if self.name == "naswot" else None
            self.scores[key] = zero_cost_of(self.name, self.space, arch, images)
            run_dir.atomic_write_text(
                self.path,
                json.dumps({"seed": SYNFLOW_SEED, "scores": self.scores}, indent=1, sort_keys=True)
                + "\n",
            )
        return self.scores[key]


def prior_caches(workdir: str, space: SearchSpace, names, images: Callable | None = None) -> dict:
    """``{name: PriorCache}`` for the zero-cost proxies ``names`` (the others are skipped)."""
    return {n: PriorCache(workdir, space, n, images) for n in names if n in ZERO_COST}
