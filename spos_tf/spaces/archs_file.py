"""Architectures listed in a text file, one per line in text form (``spos_tf.rank --archs_file``,
``spos_tf.train --sample_from``). Plain Python: no TensorFlow."""

from __future__ import annotations

import os

from spos_tf.spaces.space import SearchSpace


def arch_lines(path: str, flag: str = "--archs_file") -> list:
    """``(line number, text)`` of every architecture line of a text file (``#`` comments and
    blank lines dropped), in file order, unparsed: for tools that match rankings by their
    ``arch`` text without a space.

    Raises:
      ValueError: missing file (naming ``flag``).
    """
    if not os.path.isfile(path):
        raise ValueError(f"{flag}={path!r} does not exist")
    with open(path) as f:
        lines = [(number, line.split("#")[0].strip()) for number, line in enumerate(f, 1)]
    return [(number, text) for number, text in lines if text]


def read_archs_file(space: SearchSpace, path: str, flag: str = "--archs_file") -> list:
    """Architectures of a text file, one per line in text form (``#`` comments, blank lines and
    repeats ignored), in file order.

    Raises:
      ValueError: missing file (naming ``flag``) or a line that is not an architecture of
        ``space`` (its number).
    """
    archs = []
    for number, line in arch_lines(path, flag):
        try:
            archs.append(space.parse(line))
        except ValueError as e:
            raise ValueError(f"{path}:{number}: {e}") from None
    return list(dict.fromkeys(archs))


def archs_record(path, archs) -> dict:
    """What an app records of the architectures a file gave it, to refuse a resume once the file
    lists others: ``{"file": path, "archs": [the text form of each, in order]}`` (training's
    ``sample_from.json``, the search's ``archs_file.json``)."""
    return {"file": os.fspath(path), "archs": [str(a) for a in archs]}
