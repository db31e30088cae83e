"""Architectures listed in a text file, one per line in text form (``spos_tf.rank --archs_file``,
``spos_tf.train --sample_from``). Plain Python: no TensorFlow."""

from __future__ import annotations

import os

from spos_tf.spaces.space import SearchSpace


def read_archs_file(space: SearchSpace, path: str, flag: str = "--archs_file") -> list:
    """Architectures of a text file, one per line in text form (``#`` comments, blank lines and
    repeats ignored), in file order.

    Raises:
      ValueError: missing file (naming ``flag``) or a line that is not an architecture of
        ``space`` (its number).
    """
    if not os.path.isfile(path):
        raise ValueError(f"{flag}={path!r} does not exist")
    archs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#")[0].strip()
            if not line:
                continue
            try:
                archs.append(space.parse(line))
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
    return list(dict.fromkeys(archs))
