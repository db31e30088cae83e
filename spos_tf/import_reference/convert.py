"""Import the authors' released weights (megvii-model/SinglePathOneShot, and ShuffleNet-Series
``OneShot/``) into a spos_tf run.

The library behind ``python -m spos_tf.import_reference``. Example::

    config = ImportConfig(checkpoint="checkpoint-150000.pth.tar", kind="supernet",
                          workdir="/ckpt/reference_supernet")
    record = run(config)   # then: python -m spos_tf.search --supernet_dir=/ckpt/reference_supernet

What the release holds, and how it maps (names and shapes as its ``Supernet/network.py``,
``blocks.py`` and ``Evaluation/`` define them; a ``module.`` prefix, left by ``nn.DataParallel``,
is stripped):

- ``first_conv.{0,1}`` -> ``stem/stem_conv``, ``stem/stem_bn``; ``conv_last.{0,1}`` ->
  ``head/head_conv``, ``head/head_bn``; ``classifier.0.weight [classes, 1024]`` ->
  ``head/classifier/kernel`` (transposed; no bias, as ours).
- supernet ``features.<block>.<choice>.branch_main.<i>`` / ``.branch_proj.<i>`` (choice 0..3 =
  Shuffle3x3, Shuffle5x5, Shuffle7x7, Xception, our ``shufflenet_oneshot`` op order), stand-alone
  ``features.<block>.branch_main.<i>``: the ``i``-th module of the reference's ``nn.Sequential``
  (ReLUs hold no tensors) -> the primitive of :mod:`spos_tf.spaces.ops` in the same position
  (:data:`MAIN_INDEX`, :data:`PROJ_INDEX`).
- stand-alone networks with searched channels (megvii-model/ShuffleNet-Series ``OneShot/``,
  whose ``network.py`` and ``blocks.py`` are SinglePathOneShot's ``Evaluation/template`` ones:
  the same names, a block's mid width ``int(out // 2 * scale)`` for its scale of
  ``0.2, 0.4, ..., 1.6``): the block's mid width is read off its first pointwise conv
  (``branch_main.0`` of a Shuffle block, ``branch_main.2`` of an Xception block) and the run's
  space is ``shufflenet_oneshot_blocks_channels`` (:data:`CHANNELS_SPACE`, architecture text
  ``ops|scale indices``, e.g. ShuffleNet-Series' 328M network
  ``0,0,3,1,1,1,0,0,2,0,2,1,1,0,2,0,2,1,3,2|6,5,3,5,2,6,3,4,2,5,7,5,4,6,7,4,4,5,4,3``). A network
  whose every block has scale 1.0 stays in ``shufflenet_oneshot`` unless ``--arch`` gives
  scales. No supernet of block + channel search is published (ShuffleNet-Series ships only the
  searched network's training; SinglePathOneShot's ``Supernet/`` searches blocks only), so
  ``--kind=supernet`` reads the block supernet only.
- Convolutions OIHW ``[out, in, k, k]`` -> HWIO ``[k, k, in, out]``; depthwise ``[C, 1, k, k]`` ->
  ``[k, k, C, 1]``; BatchNorm ``running_mean``/``running_var`` ->
  ``moving_mean``/``moving_variance`` and, stand-alone only (the supernet's BN has
  ``affine=False`` in the release, as ours), ``weight``/``bias`` -> ``gamma``/``beta``;
  ``num_batches_tracked`` is accepted and unused.

Every tensor of the state_dict is used exactly once; any missing, extra or mis-shaped tensor is
reported by name (all of them at once) before anything is written.

Differences between the release and spos_tf, and how they are handled:

- padding: the release pads every conv with ``k // 2`` on each side; TF's SAME pads a stride-2 conv
  on an even input asymmetrically. The imported space sets ``padding="reference"``
  (:func:`spos_tf.models.layers.pad_for`).
- input: the release feeds BGR images on 0..255 without mean/std normalisation; the run's data
  config sets ``preprocessing="reference"`` (:func:`spos_tf.data.preprocess.finish`).
- channel shuffle (even channels pass through, odd ones enter the main branch), the stride-2 side
  branch (kxk depthwise for Shuffle kxk, 3x3 for Xception), mid channels ``out // 2``, the head
  (1x1 conv 1024, BN, ReLU, 7x7 average pool = global at 224, dropout 0.1, FC without bias) are
  the same in both; dropout is inactive at inference.
- BatchNorm epsilon: PyTorch's 1e-5, ours 1.001e-5 (cuDNN's minimum); the difference in the
  logits is part of what ``benchmarks/reference_parity.py`` measures.
- image size: the release's head pools a 7x7 map, so only 224 x 224 inputs are supported.
- evaluation resize: the release evaluates with ``OpencvResize(256)`` + ``CenterCrop(224)``; the
  run's data config sets ``eval_resize="reference"`` (:mod:`spos_tf.data.preprocess`).

Reading ``.pth.tar`` needs PyTorch (``pip install 'spos_tf[torch]'``, imported lazily). Without
PyTorch beside TensorFlow, convert the checkpoint to ``.npz`` where PyTorch is installed::

    import numpy as np, torch
    state = torch.load("checkpoint-150000.pth.tar", map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    np.savez("checkpoint-150000.npz", **{k: v.numpy() for k, v in state.items()})

The run directory written (:mod:`spos_tf.runs.run_dir` layout) holds ``config.json`` (a
:class:`~spos_tf.train.TrainConfig` of the release's recipe with ``steps`` finished: 150,000
for the supernet, 300,000 for a stand-alone network), ``checkpoints/`` (a ``tf.train.Checkpoint(
model=...)`` at that step, which :func:`spos_tf.runs.run_dir.restore_model` reads) and
``import_reference.json`` (where the weights came from). ``spos_tf.search`` and ``spos_tf.export``
take it like a trained run; it holds no optimizer state, so ``spos_tf.train`` cannot resume it.

Why one module of this size: one mapping, from the authors' checkpoint names and layouts to
spos_tf's variables, with the checks that every tensor is used once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from spos_tf.spaces import ops as ops_lib
from spos_tf.runs import run_dir
from spos_tf.spaces.space import Architecture, SearchSpace

KINDS = ("supernet", "standalone")
# The release's choice index of each candidate op (its network.py's blockIndex 0..3).
REFERENCE_OPS = ("shuffle3x3", "shuffle5x5", "shuffle7x7", "xception")
IMAGE_SIZE = 224  # the release's head is AvgPool2d(7): a global pool only at 224 x 224
SPACE = "shufflenet_oneshot"
# Block + channel stand-alone networks (ShuffleNet-Series OneShot/): its scale_list, in order.
CHANNELS_SPACE = "shufflenet_oneshot_blocks_channels"
REFERENCE_SCALES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
STEPS = {"supernet": 150_000, "standalone": 300_000}  # the release's total iterations
PROVENANCE_FILE = "import_reference.json"
# Our primitive -> index of the module in the release's nn.Sequential of the branch.
MAIN_INDEX = {
    "shuffle": {"conv1": 0, "bn1": 1, "dw": 3, "bn2": 4, "conv2": 5, "bn3": 6},
    "xception": {
        "dw1": 0,
        "bn1": 1,
        "conv1": 2,
        "bn2": 3,
        "dw2": 5,
        "bn3": 6,
        "conv2": 7,
        "bn4": 8,
        "dw3": 10,
        "bn5": 11,
        "conv3": 12,
        "bn6": 13,
    },
}
PROJ_INDEX = {"proj_dw": 0, "proj_bn1": 1, "proj_conv": 2, "proj_bn2": 3}
FIXED_MODULES = {
    "stem_conv": "first_conv.0",
    "stem_bn": "first_conv.1",
    "head_conv": "conv_last.0",
    "head_bn": "conv_last.1",
    "classifier": "classifier.0",
}
# Our variable name -> the release's tensor name, per primitive kind.
TENSOR_NAMES = {
    "conv": {"kernel": "weight"},
    "dw": {"depthwise_kernel": "weight"},
    "fc": {"kernel": "weight", "bias": "bias"},
    "bn": {
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
        "gamma": "weight",
        "beta": "bias",
    },
}
OPTIONAL_BN_TENSOR = "num_batches_tracked"  # PyTorch >= 0.4.1 saves it; nothing to import


class ReferenceImportError(ValueError):
    """A checkpoint that does not fit the reference network; ``problems`` lists every issue."""

    def __init__(self, message: str, problems=()):
        super().__init__(message)
        self.problems = list(problems)


# ------------------------------------------------------------------------------------ layout
@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor of the release's state_dict and the spos_tf variable it fills.

    Attributes:
      name: the state_dict key (without ``module.``).
      shape: its shape in the release (PyTorch layout).
      holder: our layer holding the variable: ``"stem"``, ``"head"`` or
        ``spos_tf.models.blocks.unit_name(block, op)``.
      weight: the variable's key in ``holder.weight_dict()`` (``"prim/weight"``).
      kind: the primitive kind (``conv``, ``dw``, ``fc``, ``bn``), which fixes the transpose.
    """

    name: str
    shape: tuple
    holder: str
    weight: str
    kind: str


def to_reference_shape(kind: str, shape: tuple) -> tuple:
    """The release's (PyTorch) shape of a variable of ours with ``shape``."""
    if kind == "conv" and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
    if kind == "dw" and len(shape) == 4:
        return (shape[2], 1, shape[0], shape[1])  # [k, k, C, 1] -> [C, 1, k, k]
    if kind == "fc" and len(shape) == 2:
        return (shape[1], shape[0])
    return tuple(shape)


def to_ours(kind: str, value: np.ndarray) -> np.ndarray:
    """A tensor of the release in our layout (the inverse of :func:`to_reference_shape`)."""
    if kind == "conv" and value.ndim == 4:
        return np.transpose(value, (2, 3, 1, 0))
    if kind == "dw" and value.ndim == 4:
        return np.transpose(value, (2, 3, 0, 1))
    if kind == "fc" and value.ndim == 2:
        return value.T
    return value


def reference_space(num_classes: int = 1000, name: str = SPACE) -> SearchSpace:
    """Our space of the release at 224 with ``padding="reference"``: ``shufflenet_oneshot``
    (blocks searched) or :data:`CHANNELS_SPACE` (blocks and channel scales).

    Raises:
      ReferenceImportError: the registered space's candidate ops (or scales) differ from the
        release's.
    """
    from spos_tf import spaces

    space = spaces.get(
        name, image_size=IMAGE_SIZE, num_classes=int(num_classes), padding="reference"
    )
    if space.ops != REFERENCE_OPS:
        raise ReferenceImportError(
            f"space {name!r} lists ops {space.ops}; the release's choice "
            f"blocks hold {REFERENCE_OPS} in that order"
        )
    if name == CHANNELS_SPACE and space.channel_scales != REFERENCE_SCALES:
        raise ReferenceImportError(
            f"space {name!r} lists channel scales {space.channel_scales}; ShuffleNet-Series' "
            f"scale_list is {REFERENCE_SCALES}"
        )
    return space


def _entries(module: str, holder: str, prims: dict, affine: bool, index=None) -> list:
    out = []
    for pname, prim in prims.items():
        path = index(pname) if index else FIXED_MODULES[pname]
        for wname, shape in prim.weight_shapes(affine).items():
            out.append(
                Entry(
                    f"{module}{path}.{TENSOR_NAMES[prim.kind][wname]}",
                    to_reference_shape(prim.kind, tuple(shape)),
                    holder,
                    f"{pname}/{wname}",
                    prim.kind,
                )
            )
    return out


def layout(space: SearchSpace, kind: str, arch: Architecture | None = None) -> list:
    """Every tensor of the release's ``kind`` network of ``space`` (stand-alone: of ``arch``), in
    state_dict order, as :class:`Entry` values. Derived from the primitives of
    :mod:`spos_tf.spaces.ops`, the same data the layers are built from. Cost: pure Python, no TF."""
    from spos_tf.models.blocks import unit_name
    from spos_tf.spaces.space import mid_channels

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    affine = kind == "standalone"
    out = _entries("", "stem", ops_lib.stem_prims(space), affine)
    chosen = space.decode(arch) if kind == "standalone" else None
    for block, (cin, cout, stride, hw) in enumerate(space.block_layout()):
        choices = list(enumerate(space.ops)) if chosen is None else [(None, chosen[block]["op"])]
        scale = 1.0 if chosen is None else chosen[block]["channel"]
        for choice, op in choices:
            spec = ops_lib.get_op(op)
            prims = spec.prims(cin, cout, mid_channels(space, cout, scale), stride, hw)
            prefix = f"features.{block}." + ("" if choice is None else f"{choice}.")

            def index(pname, spec=spec):
                if pname in PROJ_INDEX:
                    return f"branch_proj.{PROJ_INDEX[pname]}"
                return f"branch_main.{MAIN_INDEX[spec.kind][pname]}"

            out += _entries(prefix, unit_name(block, op), prims, affine, index)
    last = space.stages[-1].channels
    out += _entries("", "head", ops_lib.head_prims(space, last, space.final_hw), affine)
    return out


# ------------------------------------------------------------------------------------ reading
def load_state_dict(path: str) -> dict:
    """``{name: numpy array}`` of a ``.pth.tar``/``.pth``/``.pt`` (PyTorch, lazily imported) or
    ``.npz`` checkpoint; a ``{"state_dict": ...}`` wrapper and ``module.`` prefixes are removed.

    Raises:
      FileNotFoundError: no such file. ReferenceImportError: PyTorch missing for a ``.pth.tar``,
        or a file that holds no state_dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--checkpoint={path!r} does not exist; download "
            f"Supernet/checkpoint-150000.pth.tar (or an Evaluation model) "
            f"from the link in the README of megvii-model/SinglePathOneShot, or a OneShot/ "
            f"model from the README of megvii-model/ShuffleNet-Series"
        )
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            state = {k: f[k] for k in f.files}
    else:
        try:
            import torch
        except ImportError:
            raise ReferenceImportError(
                f"reading {path!r} needs PyTorch: `pip install 'spos_tf[torch]'`, or convert it "
                f"to .npz where PyTorch is installed (see `python -m spos_tf.import_reference "
                f"--helpfull` or the README, 'Start from the authors' supernet')"
            ) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (pickle, zip and torch errors all mean the same)
            raise ReferenceImportError(
                f"{path!r} is not a readable PyTorch checkpoint "
                f"({type(e).__name__}: {str(e)[:300]})"
            ) from None
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise ReferenceImportError(f"{path!r} holds a {type(obj).__name__}, not a state_dict")
        state = {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}
    return {
        k[len("module.") :] if k.startswith("module.") else k: np.asarray(v)
        for k, v in state.items()
    }


def read_blocks(state: dict, space: SearchSpace) -> tuple:
    """Each block's op and channel scale of a stand-alone state_dict, read off its shapes.

    The op: an Xception block has a ``branch_main.12`` conv; a Shuffle block's depthwise kernel
    (``branch_main.3``) is 3/5/7 wide. The scale: the block's mid width (the output channels of
    ``branch_main.0`` of a Shuffle block, ``branch_main.2`` of an Xception block) is
    ``mid_channels(space, out, scale)`` of exactly one of ``space.channel_scales`` (the release's
    ``int(out // 2 * scale)``; distinct for every stage of the release).

    Args:
      state: the state_dict (``module.`` stripped); space: :data:`CHANNELS_SPACE`'s space, whose
        ``channel_scales`` are the candidates.
    Returns:
      ``(ops, scales, problems)``: per block the index into ``space.ops`` and into
      ``space.channel_scales``, None where it cannot be read, and one line per unreadable block.
    """
    from spos_tf.spaces.space import all_widths

    ops, scales, problems = [], [], []
    for block, (_, cout, _, _) in enumerate(space.block_layout()):
        m = f"features.{block}.branch_main"
        dw = state.get(f"{m}.3.weight")
        if f"{m}.12.weight" in state:
            op, mid = "xception", state.get(f"{m}.2.weight")
        elif dw is not None and dw.ndim == 4:
            op, mid = f"shuffle{dw.shape[-1]}x{dw.shape[-1]}", state.get(f"{m}.0.weight")
        else:
            op, mid = None, None
        if op not in REFERENCE_OPS:
            problems.append(
                f"block {block}: op not readable (no {m}.12.weight of an Xception block, no "
                f"3x3/5x5/7x7 depthwise {m}.3.weight of a Shuffle block)"
            )
            ops.append(None)
            scales.append(None)
            continue
        ops.append(space.ops.index(op))
        widths = all_widths(space, cout)
        width = mid.shape[0] if mid is not None and mid.ndim == 4 else None
        if width in widths:
            scales.append(widths.index(width))
            continue
        scales.append(None)
        name = f"{m}.{2 if op == 'xception' else 0}.weight"
        problems.append(
            f"block {block} ({op}): mid width "
            + ("missing" if width is None else f"{width}")
            + f" ({name}) is none of the release's {list(widths)} for {cout} output channels "
            f"(scales {list(space.channel_scales)})"
        )
    return ops, scales, problems


def check(state: dict, entries: list, kind: str) -> list:
    """Problems of ``state`` against ``entries``: one line per missing, extra or mis-shaped tensor
    (empty when every tensor is used exactly once)."""
    expected = {e.name: e for e in entries}
    optional = {
        e.name.rsplit(".", 1)[0] + "." + OPTIONAL_BN_TENSOR for e in entries if e.kind == "bn"
    }
    problems = []
    for e in entries:
        if e.name not in state:
            problems.append(
                f"missing tensor {e.name} (shape {list(e.shape)}) of the reference {kind}"
            )
        elif tuple(state[e.name].shape) != e.shape:
            problems.append(
                f"mis-shaped tensor {e.name}: shape {list(state[e.name].shape)}, the "
                f"reference {kind} has {list(e.shape)}"
            )
    for name in state:
        if name not in expected and name not in optional:
            problems.append(
                f"extra tensor {name} (shape {list(state[name].shape)}): not part of "
                f"the reference {kind}"
            )
    return problems


def _problem_message(path: str, kind: str, problems: list) -> str:
    shown = problems[:12]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    other = "standalone" if kind == "supernet" else "supernet"
    return (
        f"{path!r} does not fit the reference {kind} ({len(problems)} problem(s)); nothing "
        f"was written:\n  " + "\n  ".join(shown) + more + f"\nFix: pass the right "
        f"--kind (--kind={other}?; a supernet's blocks are features.<block>.<choice>...., a "
        f"stand-alone network's features.<block>....), the right --arch, or the unmodified "
        f"checkpoint of megvii-model/SinglePathOneShot or ShuffleNet-Series OneShot/"
    )


# ------------------------------------------------------------------------------------ the run
@dataclasses.dataclass(frozen=True)
class ImportConfig:
    """What ``spos_tf.import_reference`` does.

    Attributes:
      checkpoint: the release's ``.pth.tar`` (needs PyTorch) or an ``.npz`` of its state_dict.
      kind: ``"supernet"`` (``Supernet/checkpoint-150000.pth.tar``) or ``"standalone"`` (an
        ``Evaluation/`` model).
      workdir: the run directory to write.
      arch: stand-alone only: the architecture (text form, e.g.
        ``2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3``, or with channel-scale indices into
        :data:`REFERENCE_SCALES` after ``|`` for a block + channel network); default: read off
        the tensor shapes. Given, it must match them.
      overwrite: replace a run already in ``workdir`` (only once the import has succeeded).
      dataset, data_dir: the data the run's config names for search/export (default ImageNet).
    """

    checkpoint: str = ""
    kind: str = "supernet"
    workdir: str = ""
    arch: str | None = None
    overwrite: bool = False
    dataset: str = "imagenet2012"
    data_dir: str | None = None

    def validate(self) -> "ImportConfig":
        """Checks the fields without touching files; returns ``self``.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        if not str(self.checkpoint or "").strip():
            raise ValueError("--checkpoint is required: the release's .pth.tar or an .npz of it")
        if self.kind not in KINDS:
            raise ValueError(f"--kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not str(self.workdir or "").strip():
            raise ValueError("--workdir is required: the run directory to write")
        if self.arch is not None and self.kind != "standalone":
            raise ValueError(
                f"--arch={self.arch!r} applies to --kind=standalone; a supernet holds "
                f"every architecture (drop --arch)"
            )
        return self


def _train_config(config: ImportConfig, space: SearchSpace, arch: Architecture | None):
    from spos_tf.data import DataConfig
    from spos_tf.train import TrainConfig

    data = DataConfig(
        name=config.dataset,
        data_dir=config.data_dir,
        image_size=IMAGE_SIZE,
        preprocessing="reference",
        eval_resize="reference",
    )
    overrides = {"image_size": IMAGE_SIZE, "num_classes": space.num_classes, "padding": "reference"}
    return TrainConfig(
        workdir=os.fspath(config.workdir),
        space=space.name,
        space_overrides=overrides,
        arch=None if arch is None else str(arch),
        data=data,
        steps=STEPS[config.kind],
        eval_split="holdout" if arch is None else "test",
    ).validate()


def _holders(model) -> dict:
    """``{layer name: layer}`` of the stem, head and op units of a supernet or stand-alone model."""
    from spos_tf.models.blocks import PrimHolder
    from spos_tf.models.standalone import _sources

    if hasattr(model, "choice_blocks"):
        return _sources(model)
    return {layer.name: layer for layer in model.layers if isinstance(layer, PrimHolder)}


def assign(model, entries: list, state: dict) -> int:
    """Writes every entry's tensor (transposed to our layout) into ``model``; returns the number
    of values written. ``state`` must have passed :func:`check`."""
    holders = _holders(model)
    count = 0
    for e in entries:
        var = holders[e.holder].weight_dict()[e.weight]
        value = to_ours(e.kind, np.asarray(state[e.name], np.float32))
        if tuple(var.shape) != value.shape:  # a layout bug, not bad input
            raise AssertionError(f"{e.name} -> {e.holder}/{e.weight}: {value.shape} vs {var.shape}")
        var.assign(value)
        count += value.size
    return count


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _target_state(config: ImportConfig) -> None:
    """Refuses a workdir that is a file, or holds a run, unless ``overwrite``."""
    workdir = os.fspath(config.workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise run_dir.RunDirError(
            f"--workdir={workdir!r} is a file, not a folder; choose another path"
        )
    ours = [
        e
        for e in run_dir.RUN_ENTRIES + (PROVENANCE_FILE,)
        if os.path.exists(os.path.join(workdir, e))
    ]
    if ours and not config.overwrite:
        raise run_dir.RunDirError(
            f"--workdir={workdir!r} already holds a run ({', '.join(ours)}); choose another "
            f"--workdir, or pass --overwrite to replace it once the import has succeeded"
        )


def _standalone_arch(config: ImportConfig, state: dict, num_classes: int, path: str) -> tuple:
    """``(space, arch)`` of a stand-alone checkpoint: ``--arch`` checked against the tensors, or
    read off them (:func:`read_blocks`). The space is ``shufflenet_oneshot`` for an ``--arch``
    without channel part, or, without ``--arch``, for a network whose every scale is 1.0;
    :data:`CHANNELS_SPACE` otherwise.

    Raises:
      ValueError: ``--arch`` does not parse. ReferenceImportError: ``--arch`` differs from the
        tensors (naming the blocks), or the tensors tell no architecture (every problem at once).
    """
    channels = reference_space(num_classes, CHANNELS_SPACE)
    n, one = channels.num_blocks, channels.channel_scales.index(1.0)
    ops, scales, unread = read_blocks(state, channels)
    found = None if unread else Architecture((tuple(ops), tuple(scales)))
    if config.arch is not None:
        name = CHANNELS_SPACE if "|" in config.arch else SPACE
        space = reference_space(num_classes, name)
        try:
            arch = space.parse(config.arch)
        except ValueError as e:
            raise ValueError(f"bad --arch={config.arch!r}: {e}") from None
        given = arch if name == CHANNELS_SPACE else Architecture((arch.genes[0], (one,) * n))
        if found is not None and found != given:
            diff = [
                b for b in range(n) if any(x[b] != y[b] for x, y in zip(given.genes, found.genes))
            ]
            shown = found if set(scales) != {one} else Architecture((found.genes[0],))
            raise ReferenceImportError(
                f"--arch={arch} differs from the architecture the tensors of {path!r} have, "
                f"{shown}, in blocks {diff}; drop --arch to use the checkpoint's"
            )
        return space, arch
    if unread:
        guess = Architecture(
            (
                tuple(0 if o is None else o for o in ops),
                tuple(one if c is None else c for c in scales),
            )
        )
        problems = unread + check(state, layout(channels, "standalone", guess), "standalone")
        raise ReferenceImportError(
            _problem_message(path, "standalone", problems)
            + "\n(the architecture could not be read off the tensors: pass --arch)",
            problems,
        )
    if set(scales) == {one}:
        return reference_space(num_classes, SPACE), Architecture((tuple(ops),))
    return channels, found


def run(config: ImportConfig, stream=None) -> dict:
    """Imports ``config.checkpoint`` into ``config.workdir``; returns the provenance record.

    Everything is checked (flags, workdir, every tensor's name and shape) and the run directory
    is written into a temporary folder beside ``workdir`` before it is moved into place, so on
    any error nothing is left behind and a run already in ``workdir`` is untouched.
    Cost: reads the checkpoint once (~8M values for the supernet), builds the model once.

    Raises:
      ValueError (flags), FileNotFoundError (checkpoint), ReferenceImportError (layout, with
      every problem in ``problems``; PyTorch missing), run_dir.RunDirError (workdir).
    """
    import spos_tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
    import tensorflow as tf

    config = config.validate()
    _target_state(config)
    path = os.fspath(config.checkpoint)
    state = load_state_dict(path)
    classifier = state.get(FIXED_MODULES["classifier"] + ".weight")
    num_classes = classifier.shape[0] if classifier is not None and classifier.ndim == 2 else 1000
    space = reference_space(num_classes)
    arch = None
    if config.kind == "standalone":
        space, arch = _standalone_arch(config, state, num_classes, path)
    entries = layout(space, config.kind, arch)
    problems = check(state, entries, config.kind)
    if problems:
        raise ReferenceImportError(_problem_message(path, config.kind, problems), problems)
    train_config = _train_config(config, space, arch)

    model = run_dir.build_model(train_config.to_dict(), space)
    values = assign(model, entries, state)
    record = {
        "source": os.path.abspath(path),
        "sha256": _sha256(path),
        "kind": config.kind,
        "arch": None if arch is None else str(arch),
        "tensors": len(entries),
        "values": int(values),
        "space": space.name,
        "padding": "reference",
        "preprocessing": "reference",
        "eval_resize": "reference",
        "step": STEPS[config.kind],
    }

    workdir = os.path.abspath(os.fspath(config.workdir))
    parent = os.path.dirname(workdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.import-", dir=parent)
    try:
        run_dir.write_config(tmp, train_config.to_dict())
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model), run_dir.checkpoint_dir(tmp), max_to_keep=1
        )
        manager.save(checkpoint_number=STEPS[config.kind])
        run_dir.atomic_write_text(
            os.path.join(tmp, PROVENANCE_FILE), json.dumps(record, indent=2, sort_keys=True) + "\n"
        )
        if config.overwrite and os.path.isdir(workdir):
            run_dir.clear(workdir, run_dir.RUN_ENTRIES + (PROVENANCE_FILE,))
        os.makedirs(workdir, exist_ok=True)
        for entry in sorted(os.listdir(tmp)):  # each entry whole (the one atomic writer)
            run_dir.replace_path(os.path.join(tmp, entry), os.path.join(workdir, entry))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if stream is not None:
        what = "supernet" if arch is None else f"stand-alone network {arch}"
        stream.write(
            f"Imported the reference {what}: {len(entries)} tensors, {values:,} values "
            f"from {path} into {workdir} (space {space.name}, padding=reference, "
            f"preprocessing=reference, eval_resize=reference, {space.num_classes} classes).\n"
        )
        stream.flush()
    return record
