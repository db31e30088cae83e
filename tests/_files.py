"""File helpers shared by the app tests (not a test module)."""

import os


def snapshot(folder, mtimes=True):
    """``{relative path: (bytes, mtime_ns)}`` of every file under ``folder``: equal snapshots mean
    nothing was written, not even the same bytes again. ``mtimes=False``: ``{path: bytes}``, equal
    when every file holds what it held."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            out[os.path.relpath(path, folder)] = (
                (data, os.stat(path).st_mtime_ns) if mtimes else data
            )
    return out
