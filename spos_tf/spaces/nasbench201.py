"""The NAS-Bench-201 (NATS-Bench topology, "tss") cell as data, and its text forms.

Plain Python, no TensorFlow. A cell has 4 nodes; node 0 is the cell's input and node ``j`` sums one
op applied to every earlier node ``i < j``; node 3 is the output. Its 6 edges, in the order of the
benchmark's string (:data:`EDGES`): ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``. Every edge takes one
of :data:`OPS` (the benchmark's own names and order), and the same cell is used in every position
of the network (Dong & Yang, "NAS-Bench-201", ICLR 2020).

Our architecture of the ``nasbench201`` space (``spos_tf.spaces``) is one op index per edge, in
:data:`EDGES` order, e.g. ``"3,3,4,1,3,1"``; the benchmark's string of the same cell is
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``
(``op~input node``, nodes 1, 2, 3 separated by ``+``). :func:`to_string` and :func:`from_string`
convert between them; ``space.parse`` accepts either form.
"""

from __future__ import annotations

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
# (target node, input node) of every edge, in the benchmark string's order.
EDGES = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))


def to_string(ops) -> str:
    """The benchmark's string of a cell given one op (name or index into :data:`OPS`) per edge."""
    names = [OPS[o] if isinstance(o, int) else str(o) for o in ops]
    if len(names) != len(EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(names)} ops")
    for name in names:
        if name not in OPS:
            raise ValueError(f"unknown NAS-Bench-201 op {name!r}; ops: {OPS}")
    nodes = []
    for j in range(1, NUM_NODES):
        nodes.append(
            "|" + "|".join(f"{names[e]}~{i}" for e, (t, i) in enumerate(EDGES) if t == j) + "|"
        )
    return "+".join(nodes)


def from_string(text: str) -> tuple:
    """Op indices (into :data:`OPS`, in :data:`EDGES` order) of the benchmark string ``text``.

    Raises:
      ValueError: naming what is malformed (node count, edge inputs, unknown op).
    """
    text = text.strip()
    nodes = text.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"NAS-Bench-201 string {text!r} has {len(nodes)} node groups; expected "
            f"{NUM_NODES - 1} separated by '+', e.g. {to_string([3] * len(EDGES))!r}"
        )
    out = []
    for j, node in enumerate(nodes, 1):
        inner = node.strip()
        if not (inner.startswith("|") and inner.endswith("|")):
            raise ValueError(f"node {j} of {text!r} must look like '|op~0|...|', got {node!r}")
        items = [s for s in inner[1:-1].split("|")]
        if len(items) != j:
            raise ValueError(f"node {j} of {text!r} needs {j} edges, got {len(items)}")
        for i, item in enumerate(items):
            op, _, src = item.partition("~")
            if src != str(i):
                raise ValueError(f"edge {item!r} of node {j} in {text!r}: expected input ~{i}")
            if op not in OPS:
                raise ValueError(f"unknown NAS-Bench-201 op {op!r} in {text!r}; ops: {OPS}")
            out.append(OPS.index(op))
    return tuple(out)


def is_string(text: str) -> bool:
    """Whether ``text`` looks like a benchmark string (rather than our index form)."""
    return "~" in text
