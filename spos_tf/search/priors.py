"""Priors a search may combine with the supernet's accuracy to pick ``best.json``
(``--score=supernet+synflow``): the SynFlow zero-cost proxy of each evaluated candidate, cached
in the search's workdir so a resumed or rerun search computes each one once.

``<workdir>/synflow.json`` holds ``{"seed": s, "scores": {arch text: SynFlow}}``; it is written
atomically after every new value, so a killed search loses at most the one being computed.

Cost: per new candidate one build of its untrained stand-alone network and one forward and
backward pass of one image (:func:`spos_tf.rank.zero_cost.synflow_of`; about 1 s for the
NAS-Bench-201 proxy networks on 2 CPU cores), in the process that writes the search's files.
"""

from __future__ import annotations

import json
import os

from spos_tf.rank.report import SYNFLOW_SEED  # the same initialisation as spos_tf.rank's
from spos_tf.runs import run_dir
from spos_tf.spaces.space import SearchSpace

SYNFLOW_FILE = "synflow.json"

__all__ = ["SYNFLOW_FILE", "SYNFLOW_SEED", "SynflowCache", "synflow_of"]


def synflow_of(space: SearchSpace, arch) -> float:
    """The SynFlow score of ``arch``'s untrained stand-alone network in ``space``, at
    :data:`SYNFLOW_SEED` (:func:`spos_tf.rank.zero_cost.synflow_of`), uncached."""
    from spos_tf.rank import zero_cost  # TensorFlow: only once a score is needed

    return zero_cost.synflow_of(space, arch, seed=SYNFLOW_SEED)


class SynflowCache:
    """``cache(arch) -> float``: the SynFlow score of ``arch``'s untrained stand-alone network in
    ``space`` (built with seed :data:`SYNFLOW_SEED`), read from ``<workdir>/synflow.json`` or
    computed and stored there.

    A file that does not parse, or was computed at another seed, is refused with the fix (delete
    it), never overwritten.
    """

    def __init__(self, workdir: str, space: SearchSpace):
        self.path = os.path.join(workdir, SYNFLOW_FILE)
        self.space = space
        self.scores: dict = {}
        if os.path.exists(self.path):
            try:
                with open(self.path) as f:
                    stored = json.load(f)
                seed, scores = stored["seed"], stored["scores"]
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{self.path} is not a SynFlow cache of spos_tf.search ({err}); delete it to "
                    "compute the scores again"
                ) from err
            if seed != SYNFLOW_SEED:
                raise ValueError(
                    f"{self.path} holds SynFlow at seed {seed}, not {SYNFLOW_SEED}; delete it to "
                    "compute the scores again"
                )
            self.scores = {str(k): float(v) for k, v in scores.items()}

    def __call__(self, arch) -> float:
        key = str(arch)
        if key not in self.scores:
            self.scores[key] = synflow_of(self.space, arch)
            run_dir.atomic_write_text(
                self.path,
                json.dumps({"seed": SYNFLOW_SEED, "scores": self.scores}, indent=1, sort_keys=True)
                + "\n",
            )
        return self.scores[key]
