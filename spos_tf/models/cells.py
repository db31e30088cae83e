"""Cell spaces (NAS-Bench-201): the supernet and the stand-alone network of a repeated DAG cell.

A cell space (``SearchSpace.cell_nodes > 0``, ``spos_tf.spaces.get("nasbench201")``) repeats one
searched cell: node 0 is the cell's input, node ``j`` sums one op on every earlier node, the last
node is the output (``spos_tf.spaces.nasbench201.EDGES``). Gene ``e`` of an architecture is the op of edge
``e`` in *every* cell.

- :class:`CellSupernet`: a :class:`~spos_tf.models.supernet.Supernet` whose body is cells of
  :class:`~spos_tf.models.supernet.ChoiceBlock` edges (one ``tf.switch_case`` per edge and cell, switching
  on ``arch[op, e]``) and fixed :class:`Reduction` blocks. Everything else (single-path sampling,
  the one train step, the masked optimizer, BN recalibration, scoring) is the base class's: an
  edge's units are owned by gene ``e``, so only the sampled ops of every cell move.
- :func:`build_cell_standalone`: the Functional network of one cell, every edge included (a
  ``none`` edge is zeros of its input, so an op whose node feeds only ``none`` edges still exists
  and counts, as in the benchmark's networks and costs); layer names equal the supernet's, so
  :func:`spos_tf.models.standalone.inherit` copies the path's weights and the outputs agree.

Cost: the supernet allocates every op of every edge of every cell (C=16, N=5: 1.69M parameters
without affine BN); a step runs one op per edge.
"""

from __future__ import annotations

import spos_tf  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from spos_tf.spaces import ops as ops_lib
from spos_tf.models.blocks import Head, OpUnit, PrimHolder, Stem, relu
from spos_tf.models.layers import BNControl
from spos_tf.spaces.space import Architecture, SearchSpace
from spos_tf.models.supernet import ChoiceBlock, Supernet


def edge_prefix(position: int, edge: int) -> str:
    """Name of edge ``edge`` of the cell at network position ``position`` (units append the op)."""
    return f"cell{position:02d}_e{edge}"


def node_inputs(space: SearchSpace) -> list:
    """Per node ``j >= 1``: the ``(edge, input node)`` pairs that feed it."""
    from spos_tf.spaces.nasbench201 import EDGES

    edges = [(j, i) for j in range(1, space.cell_nodes) for i in range(j)]
    if space.cell_nodes == 4 and tuple(edges) != EDGES:  # pragma: no cover - a guard
        raise AssertionError("edge order differs from the benchmark's")
    return [
        [(e, i) for e, (t, i) in enumerate(edges) if t == j] for j in range(1, space.cell_nodes)
    ]


class Reduction(PrimHolder):
    """NAS-Bench-201's residual reduction block (``spos_tf.spaces.ops.reduction_prims``): ReLU-conv3x3/2-BN,
    ReLU-conv3x3-BN, plus a 2x2/2 average pool and 1x1 conv shortcut."""

    def __init__(self, position, cin, cout, in_hw, control, affine, seed=0, **kwargs):
        if in_hw % 2:
            raise ValueError(
                f"a reduction block needs an even feature map, got {in_hw}x{in_hw} (use an "
                f"image size divisible by 4)"
            )
        super().__init__(name=ops_lib.reduction_name(position), **kwargs)
        self._make_prims(
            ops_lib.reduction_prims(cin, cout, in_hw), seed=seed, control=control, affine=affine
        )

    def call(self, x, training=None):
        p = self.prims
        h = p["a_bn"](p["a_conv"](relu(x)), training=training)
        h = p["b_bn"](p["b_conv"](relu(h)), training=training)
        return h + p["down"](tf.nn.avg_pool2d(x, 2, 2, "VALID"))


class Cell(keras.layers.Layer):
    """One cell of the supernet: a :class:`ChoiceBlock` per edge; ``call(x, arch)`` runs the ops
    ``arch`` picks."""

    def __init__(self, space, position, channels, hw, control, seed, **kwargs):
        super().__init__(name=f"cell{position:02d}", **kwargs)
        self.nodes = node_inputs(space)
        self.edges = [
            ChoiceBlock(
                space,
                e,
                control,
                seed,
                site=(channels, channels, 1, hw),
                prefix=edge_prefix(position, e),
            )
            for e in range(space.num_blocks)
        ]

    def call(self, x, arch, training=None):
        nodes = [x]
        for inputs in self.nodes:
            nodes.append(
                tf.add_n([self.edges[e](nodes[i], arch, training=training) for e, i in inputs])
            )
        return nodes[-1]


class CellSupernet(Supernet):
    """The supernet of a cell space (see the module docstring)."""

    def _build_body(self, space: SearchSpace, seed: int) -> None:
        self.body, self.choice_blocks, self.reductions = [], [], []
        for pos, item in enumerate(space.cell_layout()):
            if item[0] == "cell":
                cell = Cell(space, pos, item[1], item[2], self.bn_control, seed)
                self.choice_blocks.extend(cell.edges)
                self.body.append(cell)
            else:
                red = Reduction(pos, *item[1:], self.bn_control, affine=False, seed=seed)
                self.reductions.append(red)
                self.body.append(red)

    def fixed_holders(self) -> list:
        return [self.stem, *self.reductions, self.head]

    def call(self, images, training=None, arch=None):
        arch = tf.convert_to_tensor(self.arch_var) if arch is None else tf.convert_to_tensor(arch)
        x = self.stem(images, training=training)
        for layer in self.body:
            if isinstance(layer, Cell):
                x = layer(x, arch, training=training)
            else:
                x = layer(x, training=training)
        return self.head(x, training=training)


def build_cell_standalone(
    space: SearchSpace, arch: Architecture, supernet=None, seed: int = 0, bn_momentum: float = 0.9
) -> keras.Model:
    """The stand-alone network of ``arch`` in a cell space (affine BN, no ``switch_case``);
    inherits ``supernet``'s weights if given. Called by :func:`spos_tf.build_standalone`."""
    from spos_tf.models.standalone import inherit

    space.validate(arch)
    ops = [space.ops[i] for i in arch.genes[0]]
    control = BNControl(bn_momentum)
    inputs = keras.Input((space.image_size, space.image_size, 3), name="images")
    x = Stem(space, control, affine=True, seed=seed)(inputs)
    for pos, item in enumerate(space.cell_layout()):
        if item[0] == "reduction":
            x = Reduction(pos, *item[1:], control, affine=True, seed=seed)(x)
            continue
        c, hw = item[1], item[2]

        def unit(e, op, pos=pos, c=c, hw=hw):
            return OpUnit(
                op, c, c, 1, hw, (c,), control, affine=True, seed=seed,
                padding=space.padding, name=f"{edge_prefix(pos, e)}_{op}",
            )  # fmt: skip

        nodes = [x]
        for inputs_of_node in node_inputs(space):
            terms = [unit(e, ops[e])(nodes[i]) for e, i in inputs_of_node]
            nodes.append(
                terms[0]
                if len(terms) == 1
                else keras.layers.Add(name=f"cell{pos:02d}_node{len(nodes)}")(terms)
            )
        x = nodes[-1]
    logits = Head(space, control, affine=True, seed=seed)(x)
    model = keras.Model(inputs, logits, name="standalone")
    model.bn_control = control
    model.space, model.arch = space, arch
    if supernet is not None:
        inherit(model, supernet)
    return model
