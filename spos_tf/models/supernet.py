"""The single-path supernet: choice blocks switching with ``tf.switch_case``.

``Supernet(images, arch=arch)`` runs only the path ``arch`` (an int32 tensor ``[4, num_blocks]``, see
:meth:`SearchSpace.indices`); without ``arch`` it runs the path stored in ``model.arch_var``. Because
the architecture is a tensor, one traced function serves every architecture.

``fit`` trains by single-path uniform sampling (:func:`spos_tf.models.step.train_step`, the step the
training app runs too): each step draws one architecture as a function of
``(seed, optimizer.iterations)`` (shared by all replicas), stores it in ``arch_var``, runs that path
forward and backward, and applies a masked optimizer (:mod:`spos_tf.models.optim`) so that only the sampled
path's kernels, BN statistics and optimizer slots change. BN layers have no affine parameters, as in
the reference supernet.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import spos_tf  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from spos_tf import costs as costs_lib
from spos_tf.models import precision
from spos_tf.models import step as step_lib
from spos_tf.models.blocks import Head, OpUnit, Stem, unit_name
from spos_tf.models.layers import BNControl
from spos_tf.models.optim import MaskedOptimizer, Owner
from spos_tf.models.sampling import ArchSampler
from spos_tf.spaces.space import GENE_KINDS, SearchSpace, all_widths

OP_ROW = GENE_KINDS.index("op")
CHANNEL_ROW = GENE_KINDS.index("channel")


class ChoiceBlock(keras.layers.Layer):
    """One choice block: a unit per candidate op, each serving every channel width.

    With ``dynamic_width`` (channel search in a float space) there is one ``switch_case`` branch
    per op and the sampled width reaches the unit as a scalar tensor (dynamic leading slices): the
    trace holds ``num_ops`` branches per block instead of ``num_ops * num_widths``. Otherwise
    (one width, or a quantized space, whose wrappers slice statically) branch
    ``op_index * num_widths + channel_index`` runs unit ``op`` at that static width.
    """

    def __init__(
        self,
        space: SearchSpace,
        block: int,
        control: BNControl,
        seed: int,
        site: tuple | None = None,
        prefix: str | None = None,
        **kwargs,
    ):
        """``block``: the gene position whose choice this block follows; ``site``: its shape
        ``(cin, cout, stride, in_hw)`` (default ``space.block_layout()[block]``); ``prefix``:
        names it and its units (default ``choice_block<block>`` / ``unit_name``), e.g. one edge
        of one cell of a cell space."""
        super().__init__(name=prefix or f"choice_block{block:02d}", **kwargs)
        cin, cout, stride, hw = site or space.block_layout()[block]
        self.block = block
        self.widths = all_widths(space, cout)
        self.units = {
            op: OpUnit(
                op,
                cin,
                cout,
                stride,
                hw,
                self.widths,
                control,
                affine=False,
                seed=seed,
                padding=space.padding,
                name=f"{prefix}_{op}" if prefix else unit_name(block, op),
            )
            for op in space.ops
        }
        self.dynamic_width = len(self.widths) > 1 and not space.quantized
        # ((gene row, selector), ...): around the block's call each selector is set to the tensor
        # arch[row, block] (``selector.selecting(index)``), so per-block genes other than op and
        # channel reach the layers without a retrace. Filled by wrappers that read such genes
        # (spos_tf.quant.apply: weight and activation bit widths); empty for float spaces.
        self.gene_selectors = ()

    def branches(self, x, training, width=None):
        """The ``switch_case`` branches: one per op at the tensor ``width`` if given, else one per
        (op, static width)."""
        if width is not None:
            return [
                lambda unit=unit: unit(x, training=training, width=width)
                for unit in self.units.values()
            ]
        return [
            lambda unit=unit, w=w: unit(x, training=training, width=w)
            for unit, w in itertools.product(self.units.values(), self.widths)
        ]

    def call(self, x, arch, training=None):
        with contextlib.ExitStack() as stack:
            for row, selector in self.gene_selectors:
                stack.enter_context(selector.selecting(arch[row, self.block]))
            if self.dynamic_width:
                width = tf.gather(tf.constant(self.widths, tf.int32), arch[CHANNEL_ROW, self.block])
                fns = self.branches(x, training, width)
                index = arch[OP_ROW, self.block]
            else:
                fns = self.branches(x, training)
                index = arch[OP_ROW, self.block] * len(self.widths) + arch[CHANNEL_ROW, self.block]
            if len(fns) == 1:
                return fns[0]()
            return tf.switch_case(index, fns)


class Supernet(keras.Model):
    """The supernet of a :class:`SearchSpace`. Build with :func:`build_supernet`."""

    def __init__(self, space: SearchSpace, seed: int = 0, bn_momentum: float = 0.9, **kwargs):
        super().__init__(name=kwargs.pop("name", "supernet"), **kwargs)
        self.space = space
        self.seed = int(seed)
        self.bn_control = BNControl(bn_momentum)
        self.stem = Stem(space, self.bn_control, affine=False, seed=seed)
        self._build_body(space, seed)
        self.head = Head(space, self.bn_control, affine=False, seed=seed)
        self.arch_var = tf.Variable(
            np.zeros((len(GENE_KINDS), space.num_blocks), np.int32),
            trainable=False,
            name="arch",
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.sampler = ArchSampler(space, seed)
        self._paths_var = None  # the pair step's two paths, created by set_sampler when needed
        self._cost_table = costs_lib.CostTable(space)

    def _build_body(self, space: SearchSpace, seed: int) -> None:
        """Creates the layers between stem and head; ``self.choice_blocks`` must list every
        :class:`ChoiceBlock` (weight ownership, inheritance and quantization walk it)."""
        self.choice_blocks = [
            ChoiceBlock(space, b, self.bn_control, seed) for b in range(space.num_blocks)
        ]

    def fixed_holders(self) -> list:
        """The primitive holders outside the choice blocks (stem, head; subclasses add theirs)."""
        return [self.stem, self.head]

    # ------------------------------------------------------------------ forward
    def call(self, images, training=None, arch=None):
        arch = tf.convert_to_tensor(self.arch_var) if arch is None else tf.convert_to_tensor(arch)
        x = self.stem(images, training=training)
        for block in self.choice_blocks:
            x = block(x, arch, training=training)
        return self.head(x, training=training)

    def set_arch(self, arch) -> None:
        """Makes ``arch`` (an Architecture) the path used by calls without ``arch=``."""
        self.arch_var.assign(self.space.indices(self.space.validate(arch)))

    # ------------------------------------------------------------------ training
    def set_sampler(self, sampler: ArchSampler) -> None:
        """Replaces the per-step architecture sampler; fails fast if its constraint is infeasible."""
        sampler(0)
        self.sampler = sampler
        if getattr(sampler, "pairs", False) and self._paths_var is None:
            self._make_paths_var()

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _make_paths_var(self) -> None:
        """The pair step's scratch variable: written by every pair step before the update reads
        it, so it is neither a weight nor checkpointed (untracked: ``weights``, checkpoints and
        the evaluation twin keep their layout)."""
        self._paths_var = tf.Variable(
            np.zeros((2, len(GENE_KINDS), self.space.num_blocks), np.int32),
            trainable=False,
            name="paths",
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def _sample(self, step):
        arch = self.sampler(int(step))
        return self.space.indices(arch), np.float32(self._cost_table.macs(arch))

    def sample_arch_tensor(self, step):
        """``(arch [4, B] int32, macs float32)`` for ``step``, computed on the host."""
        arch, macs = tf.numpy_function(self._sample, [step], (tf.int32, tf.float32), stateful=False)
        arch.set_shape((len(GENE_KINDS), self.space.num_blocks))
        macs.set_shape(())
        return arch, macs

    @property
    def paths_per_step(self) -> int:
        """Paths trained per step: 1, or K with a fair sampler (:class:`FairSampler`), whose K
        paths together use every choice, so the update then moves every choice."""
        return int(getattr(self.sampler, "paths_per_step", 1))

    @property
    def trains_every_choice(self) -> bool:
        """True with a fair sampler: the step's paths together use every choice, so the masked
        optimizer moves every choice (:class:`~spos_tf.models.sampling.FairSampler`)."""
        return self.paths_per_step > 1 and not getattr(self.sampler, "pairs", False)

    @property
    def step_paths_var(self):
        """With a pair sampler (:class:`~spos_tf.models.rank_pairs.RankPairSampler`): the
        ``[2, 4, B]`` int32 variable holding the step's two paths, whose union the masked
        optimizer moves; else None (the optimizer reads ``arch_var``)."""
        return self._paths_var if getattr(self.sampler, "pairs", False) else None

    def _sample_pair(self, step):
        a, b, margin = self.sampler.pair(int(step))
        return (
            np.stack([self.space.indices(a), self.space.indices(b)]),
            np.asarray([self._cost_table.macs(a), self._cost_table.macs(b)], np.float32),
            np.float32(margin),
        )

    def sample_pair_tensor(self, step):
        """``(archs [2, 4, B] int32, macs [2] float32, margin float32)``: the two paths of
        ``step`` of a pair sampler and their ranking margin, computed on the host."""
        archs, macs, margin = tf.numpy_function(
            self._sample_pair, [step], (tf.int32, tf.float32, tf.float32), stateful=False
        )
        archs.set_shape((2, len(GENE_KINDS), self.space.num_blocks))
        macs.set_shape((2,))
        margin.set_shape(())
        return archs, macs, margin

    def _sample_paths(self, step):
        archs = self.sampler.paths(int(step))
        return (
            np.stack([self.space.indices(a) for a in archs]),
            np.asarray([self._cost_table.macs(a) for a in archs], np.float32),
        )

    def sample_paths_tensor(self, step):
        """``(archs [K, 4, B] int32, macs [K] float32)``: the K paths of ``step`` of a fair
        sampler, computed on the host."""
        k = self.paths_per_step
        archs, macs = tf.numpy_function(
            self._sample_paths, [step], (tf.int32, tf.float32), stateful=False
        )
        archs.set_shape((k, len(GENE_KINDS), self.space.num_blocks))
        macs.set_shape((k,))
        return archs, macs

    def compile(self, optimizer="masked_sgd", **kwargs):
        """Keras ``compile`` with a masked optimizer (default ``MaskedSGD()``), bound to this
        supernet; under the ``mixed_float16`` policy it is wrapped for loss scaling
        (:func:`spos_tf.models.precision.loss_scaled`)."""
        if optimizer == "masked_sgd":
            from spos_tf.models.optim import MaskedSGD

            optimizer = MaskedSGD()
        if not isinstance(precision.inner_optimizer(optimizer), MaskedOptimizer):
            raise TypeError(
                f"the supernet needs a masked optimizer (spos_tf.MaskedSGD or spos_tf.models.optim."
                f"MaskedAdam), got {type(optimizer).__name__}: stock optimizers move the weights "
                f"of unsampled choices through momentum and weight decay"
            )
        if self.dtype_policy.name == "mixed_float16":
            optimizer = precision.loss_scaled(optimizer, "mixed_float16")
        optimizer.bind(self)
        super().compile(optimizer=optimizer, **kwargs)
        # Slots created now, not inside the first traced step (which would then trace twice).
        optimizer.build(self.trainable_variables)

    def train_step(self, data):
        """Keras ``fit``'s step: :func:`spos_tf.models.step.train_step` with the compiled loss;
        logs the compiled metrics and ``arch_macs`` (MACs of the sampled path)."""
        x, y = data[0], data[1]
        out = step_lib.train_step(
            self, self.optimizer, lambda labels, logits: self.compute_loss(x, labels, logits), x, y
        )
        logs = self.compute_metrics(x, y, out.logits, None)
        logs["arch_macs"] = out.macs
        return logs

    def variable_owners(self) -> list:
        """``[(variable, Owner)]`` for every trainable variable that belongs to one choice."""
        out = []
        searched = self.space.searched_genes
        for block in self.choice_blocks:
            for op_index, unit in enumerate(block.units.values()):
                conditions = ((OP_ROW, op_index),) if "op" in searched else ()
                for key, var in unit.weight_dict().items():
                    if not var.trainable:
                        continue
                    pname, wname = key.split("/")
                    shapes = tuple(
                        tuple(unit.prim_specs(w)[pname].weight_shapes(False)[wname])
                        for w in block.widths
                    )
                    out.append(
                        (
                            var,
                            Owner(
                                block.block, conditions, shapes if len(block.widths) > 1 else None
                            ),
                        )
                    )
        return out


def build_supernet(
    space: SearchSpace, seed: int = 0, bn_momentum: float = 0.9, wrap=None
) -> Supernet:
    """Builds the float supernet of ``space`` with every choice's variables created (call it
    inside a strategy scope for distributed training). Cost: allocates all choices (e.g. ~8.4M
    float parameters for ``shufflenet_oneshot`` at 1000 classes).

    ``wrap``: called with the constructed model before its first call creates the variables, to
    replace primitives by wrappers (e.g. :func:`spos_tf.quant.apply.quantize_supernet`). This
    module never wraps by itself: :func:`spos_tf.build_supernet` (:mod:`spos_tf.build`) passes the
    wrapper a quantized space needs.

    Raises:
      ValueError: ``space.quantized`` without ``wrap`` (its bit genes would reach no layer).
    """
    if space.quantized and wrap is None:
        raise ValueError(
            f"space {space.name!r} is quantized: build it with spos_tf.build_supernet, which "
            f"applies the quantization wrappers"
        )
    if space.cell_nodes:
        from spos_tf.models.cells import CellSupernet

        model = CellSupernet(space, seed=seed, bn_momentum=bn_momentum)
    else:
        model = Supernet(space, seed=seed, bn_momentum=bn_momentum)
    if wrap is not None:
        wrap(model)
    model(tf.zeros((1, space.image_size, space.image_size, 3)), training=False)
    return model
