"""Op-level time of a traced step from the TensorFlow profiler (``tf.profiler.experimental``).

``profile(fn, steps, logdir)`` runs ``fn()`` ``steps`` times under the profiler and returns the
host CPU op events of the trace summed per op type (and per op name), in milliseconds per step.
Events are the executor's ``"name:Type"`` TraceMe events of the ``/host:CPU`` plane; nested
events (a ``Case`` op and the ops of its branch) are all counted, so the sum over types is more
than the step time: read the table by type, not as a partition.
"""

import collections
import glob
import os
import shutil

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2


def _events(logdir):
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" in name and not name.startswith(("$", "Iterator", "EagerExecute")):
                    yield name, ev.duration_ps / 1e9  # ms


def profile(fn, steps, logdir):
    """``({op_type: ms per step}, {op_name: ms per step})`` of ``steps`` calls of ``fn``."""
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        fn()
    tf.profiler.experimental.stop()
    by_type, by_name = collections.Counter(), collections.Counter()
    for name, ms in _events(logdir):
        op_name, op_type = name.rsplit(":", 1)
        by_type[op_type] += ms / steps
        by_name[op_name] += ms / steps
    return dict(by_type), dict(by_name)


def top(table, n=15):
    return [(k, round(v, 1)) for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:n]]
