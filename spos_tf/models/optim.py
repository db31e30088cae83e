"""Masked optimizers: only the sampled path's weights, slots and weight decay move.

Inside ``tf.function`` the variables of unselected ``tf.switch_case`` branches get gradients of exactly
0.0, and stock optimizers still move them (momentum, decoupled weight decay, Adam). These optimizers
know which (block, choice) owns each variable (:class:`Owner`, provided by the supernet) and select
the new value only where ``arch[row, block] == choice`` (``tf.where``); for channel search a variable
used only in a leading slice gets an element mask as well, so its other entries and their slots stay
bit-identical. Variables without an owner (stem, head) are updated every step.

The current architecture is read from ``model.arch_var`` (assigned by the model's ``train_step``
before ``apply_gradients``), so the rule also holds under ``tf.distribute`` strategies, where one
architecture is shared by all replicas of a global step.

Cost: one select per owned variable and slot (about 5% of a step on a ShuffleNetV2 supernet,
batch 32 at 224x224 on 2 CPU cores, measured when this rule was chosen; a ``tf.cond`` per variable
ran about 2% faster but made tracing large supernets several times slower).

Momentum separation (DYNAS, Jeon et al., CVPR 2025; ``momentum_split=<block>``): every slot holds
one set per choice of that block's (edge's) :func:`~spos_tf.models.sampling.split_kind` gene (its
op), stacked on a leading axis; a step reads and writes only the set of the sampled path's choice
there, so the other sets stay bit-identical. DYNAS keeps one SGD optimizer per op of a random
edge. Cost: slot memory x the number of choices, and one gather and one scatter per slot.
"""

from __future__ import annotations

import dataclasses

import spos_tf  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from spos_tf.spaces.space import GENE_KINDS

CHANNEL_ROW = GENE_KINDS.index("channel")


@dataclasses.dataclass(frozen=True)
class Owner:
    """Which path owns a variable.

    Attributes:
      block: choice block index.
      conditions: ``((gene_row, choice), ...)``: the variable is on the path iff
        ``arch[gene_row, block] == choice`` for all of them (``gene_row`` indexes ``GENE_KINDS``).
      shapes: for channel search, the used (leading-slice) shape of the variable for each channel
        choice index; ``None`` when the variable is always used whole.
    """

    block: int
    conditions: tuple = ()
    shapes: tuple | None = None

    def active(self, arch):
        """Scalar bool tensor: is this variable on the path ``arch`` ([4, num_blocks] int32)?"""
        result = tf.constant(True)
        for row, choice in self.conditions:
            result = tf.logical_and(result, tf.equal(arch[row, self.block], choice))
        return result

    def mask(self, arch, full_shape):
        """Bool tensor broadcastable to ``full_shape`` marking the used leading slice, or None."""
        if (
            self.shapes is None
            or len(set(self.shapes)) == 1
            and tuple(self.shapes[0]) == tuple(full_shape)
        ):
            return None
        idx = arch[CHANNEL_ROW, self.block]
        mask = None
        for axis, dim in enumerate(full_shape):
            sizes = [s[axis] for s in self.shapes]
            if all(s == dim for s in sizes):
                continue
            size = tf.gather(tf.constant(sizes, tf.int32), idx)
            axis_mask = tf.range(dim) < size
            shape = [1] * len(full_shape)
            shape[axis] = dim
            axis_mask = tf.reshape(axis_mask, shape)
            mask = axis_mask if mask is None else tf.logical_and(mask, axis_mask)
        return mask


def _short_name(var) -> str:
    name = var.name.split(":")[0]
    parts = [p for p in name.split("/") if not p.startswith("replica_")]
    return parts[-1]


class MaskedOptimizer(keras.optimizers.Optimizer):
    """Base class: subclasses define ``slot_names`` and ``dense_update``.

    Args:
      learning_rate: float or ``keras.optimizers.schedules.LearningRateSchedule``.
      weight_decay: coupled L2 coefficient added to the gradient of conv/FC kernels only (variables
        whose short name ends in ``kernel``), and only when the variable is on the sampled path.
      momentum_split: None, or a choice block of the bound model's space: keep one slot set per
        choice of that block's op (momentum separation, see the module docstring).
    Call :meth:`bind` with the model (``Supernet.compile`` does it) before the first step.
    """

    slot_names: tuple = ()

    def __init__(
        self,
        learning_rate=0.01,
        weight_decay=0.0,
        name="MaskedOptimizer",
        momentum_split=None,
        **kwargs,
    ):
        kwargs.setdefault("jit_compile", False)
        super().__init__(name=name, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.l2 = float(weight_decay)
        self.momentum_split = momentum_split
        self._groups = None  # (gene row, block, number of slot sets) once built
        self._model = None
        self._owners = {}
        self._decayed = set()

    def bind(self, model):
        """Attaches the model whose ``arch_var`` and ``variable_owners()`` drive the masks."""
        self._model = model

    def build(self, var_list):
        super().build(var_list)
        if hasattr(self, "_built") and self._built:
            return
        self._slots = {name: [] for name in self.slot_names}
        if self.momentum_split is not None:
            self._groups = self._slot_groups()
        for var in var_list:
            shape = None if self._groups is None else (self._groups[2], *var.shape)
            for name in self.slot_names:
                self._slots[name].append(self.add_variable_from_reference(var, name, shape))
            if _short_name(var).endswith("kernel"):
                self._decayed.add(self._var_key(var))
        if self._model is not None and hasattr(self._model, "variable_owners"):
            for var, owner in self._model.variable_owners():
                self._owners[self._var_key(var)] = owner
        self._built = True

    def _slot_groups(self) -> tuple:
        """``(gene row, block, number of slot sets)`` of ``momentum_split`` on the bound model."""
        from spos_tf.models.sampling import split_choices, split_kind

        space = getattr(self._model, "space", None)
        if space is None:
            raise ValueError(
                "momentum_split separates a supernet's paths: bind the supernet (optimizer.bind"
                "(model)) before building, or drop momentum_split for a stand-alone network"
            )
        split_choices(space, self.momentum_split, "momentum_split")  # names the valid blocks
        kind = split_kind(space)
        count = len(space.ops) if kind == "op" else len(space.choices[kind])
        return GENE_KINDS.index(kind), int(self.momentum_split), count

    def dense_update(self, grad, var, slots, lr):
        """Returns ``(new_var_value, [new_slot_values])`` for one dense update."""
        raise NotImplementedError

    def update_step(self, gradient, variable):
        key = self._var_key(variable)
        index = self._index_dict[key]
        slots = [self._slots[name][index] for name in self.slot_names]
        grad = tf.convert_to_tensor(gradient)
        lr = tf.cast(self.learning_rate, variable.dtype)
        owner = self._owners.get(key)
        stacked, group = slots, None
        if self._groups is not None:  # momentum separation: the sampled choice's slot set only
            row, block, _ = self._groups
            group = tf.convert_to_tensor(self._model.arch_var)[row, block]
            slots = [tf.gather(s, group) for s in stacked]

        # The L2 term is formed first: under MirroredStrategy, grappler's AddOpsRewrite of a
        # 3-term sum inside a tf.cond once created clashing temporary variables across devices.
        g = grad + self.l2 * variable if (self.l2 and key in self._decayed) else grad

        new_var, new_slots = self.dense_update(g, variable, slots, lr)
        # A fair step (FairSampler) trained every choice: no variable is left out. A pair step
        # (RankPairSampler) trained two paths: the union of theirs moves.
        trains_all = getattr(self._model, "trains_every_choice", False)
        if owner is not None and not trains_all:
            pair = getattr(self._model, "step_paths_var", None)
            archs = (
                [tf.convert_to_tensor(self._model.arch_var)]
                if pair is None
                else tf.unstack(tf.convert_to_tensor(pair))
            )
            keep = None
            for arch in archs:
                on_path = owner.active(arch)
                mask = owner.mask(arch, variable.shape)
                if mask is not None:
                    on_path = tf.logical_and(on_path, mask)
                keep = on_path if keep is None else tf.logical_or(keep, on_path)
            # A select rather than a tf.cond: no branch functions to trace, so large supernets
            # build their train step much faster; unselected entries get their old value back
            # bit for bit.
            new_var = tf.where(keep, new_var, variable)
            new_slots = [tf.where(keep, n, s) for n, s in zip(new_slots, slots)]
        variable.assign(new_var)
        if group is None:
            for slot, value in zip(slots, new_slots):
                slot.assign(value)
        else:  # the other choices' sets are written back unchanged, bit for bit (a whole-slot
            # assign: MirroredVariable has no in-place scatter_nd_update)
            index = tf.reshape(group, [1, 1])
            for slot, value in zip(stacked, new_slots):
                slot.assign(tf.tensor_scatter_nd_update(slot, index, value[None]))

    def get_config(self):
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter(self._learning_rate),
            weight_decay=self.l2,
            momentum_split=self.momentum_split,
        )
        return config


class MaskedSGD(MaskedOptimizer):
    """SGD with momentum as in the reference (PyTorch form): ``m = mu*m + g; w -= lr*m``."""

    def __init__(
        self,
        learning_rate=0.5,
        momentum=0.9,
        weight_decay=4e-5,
        name="MaskedSGD",
        momentum_split=None,
        **kwargs,
    ):
        self.momentum = float(momentum)
        self.slot_names = ("momentum",) if self.momentum else ()
        super().__init__(
            learning_rate, weight_decay, name=name, momentum_split=momentum_split, **kwargs
        )

    def dense_update(self, grad, var, slots, lr):
        if not self.momentum:
            return var - lr * grad, []
        m = self.momentum * slots[0] + grad
        return var - lr * m, [m]

    def get_config(self):
        return dict(super().get_config(), momentum=self.momentum)


class MaskedAdam(MaskedOptimizer):
    """Adam with masked updates and per-entry step counts.

    Bias correction uses how often each entry was updated (slot ``t``, incremented only where the
    update is applied: the entry's owner was sampled and, for channel search, the entry lies in
    the sampled leading slice), not the global step: an entry updated in ``k`` of ``n`` steps ends
    exactly where plain Adam ends after those ``k`` steps on the same gradients. Variables without
    an owner (stem, head, a stand-alone network) count every step, i.e. plain tf_keras Adam.

    Cost: a third slot the size of the variable (float), and a per-entry bias correction.
    """

    slot_names = ("m", "v", "t")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        weight_decay=0.0,
        name="MaskedAdam",
        momentum_split=None,
        **kwargs,
    ):
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        super().__init__(
            learning_rate, weight_decay, name=name, momentum_split=momentum_split, **kwargs
        )

    def dense_update(self, grad, var, slots, lr):
        t = slots[2] + 1.0
        m = self.beta_1 * slots[0] + (1 - self.beta_1) * grad
        v = self.beta_2 * slots[1] + (1 - self.beta_2) * tf.square(grad)
        alpha = lr * tf.sqrt(1 - tf.pow(self.beta_2, t)) / (1 - tf.pow(self.beta_1, t))
        return var - alpha * m / (tf.sqrt(v) + self.epsilon), [m, v, t]

    def get_config(self):
        return dict(
            super().get_config(), beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon
        )
