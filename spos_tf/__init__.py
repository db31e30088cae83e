"""spos_tf: Single Path One-Shot NAS (Guo et al., ECCV 2020) for TensorFlow / tf_keras.

Importing the package is cheap: it only sets ``TF_USE_LEGACY_KERAS=1`` (TF-MOT needs Keras 2, so all
model code is built with ``tf_keras``) and, unless set, ``TF_ENABLE_ONEDNN_OPTS=1`` (oneDNN CPU
kernels, see below) and exposes the public API lazily, so that
``from spos_tf import EvolutionOracle`` does not import TensorFlow and stays usable from Keras 3 projects.

Public API::

    space = spos_tf.spaces.get("shufflenet_oneshot", image_size=224, num_classes=1000)
    arch = space.parse("2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3")
    supernet = spos_tf.build_supernet(space)
    model = spos_tf.build_standalone(space, arch, supernet=supernet)
    spos_tf.costs.macs(space, arch), spos_tf.costs.params(space, arch)
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels for convolutions, BN and their gradients on CPU. TensorFlow turns them on by
# itself only on CPUs with AVX-512 VNNI / BF16 / AMX; on an AVX2 CPU they make a supernet step at
# 224 px 1.5-2x faster (benchmarks/RESULTS.md, issue 15). Set TF_ENABLE_ONEDNN_OPTS=0 before
# importing spos_tf to turn them off; like TF_USE_LEGACY_KERAS this only acts if spos_tf is
# imported before TensorFlow. No effect on GPU kernels.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

# attribute -> (module, name or None for the module itself)
from spos_tf._lazy import lazy_exports  # noqa: E402

_LAZY = {
    "spaces": ("spos_tf.spaces", None),
    "space": ("spos_tf.spaces.space", None),
    "costs": ("spos_tf.costs", None),
    "Architecture": ("spos_tf.spaces.space", "Architecture"),
    "SearchSpace": ("spos_tf.spaces.space", "SearchSpace"),
    "build_supernet": ("spos_tf.build", "build_supernet"),
    "build_standalone": ("spos_tf.build", "build_standalone"),
    "build_model": ("spos_tf.build", "build_model"),
    "inherit": ("spos_tf.models.standalone", "inherit"),
    "MaskedSGD": ("spos_tf.models.optim", "MaskedSGD"),
    "data": ("spos_tf.data", None),
    "DataConfig": ("spos_tf.data", "DataConfig"),
    "build_dataset": ("spos_tf.data", "build_dataset"),
    "dataset_info": ("spos_tf.data", "dataset_info"),
    "preprocess_for_eval": ("spos_tf.data", "preprocess_for_eval"),
    "MaskedAdam": ("spos_tf.models.optim", "MaskedAdam"),
    "ArchSampler": ("spos_tf.models.sampling", "ArchSampler"),
    "PathEvaluator": ("spos_tf.models.evaluate", "PathEvaluator"),
    "recalibrate_bn": ("spos_tf.models.evaluate", "recalibrate_bn"),
    "evaluate_path": ("spos_tf.models.evaluate", "evaluate_path"),
    "reset_quant_ranges": ("spos_tf.quant.apply", "reset_quant_ranges"),
    "EvolutionOracle": ("spos_tf.search.oracle", "EvolutionOracle"),
    "RandomSearchOracle": ("spos_tf.search.oracle", "RandomSearchOracle"),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
