"""Input data for spos_tf: TFDS data sets, image folders and the offline ``spos_digits`` default.

Importing this package registers the ``spos_digits`` TFDS builder, so
``tfds.builder("spos_digits", data_dir=...)`` works afterwards.

Example::

    config = DataConfig(name="spos_digits", data_dir="/tmp/tfds").validate()
    num_classes, num_examples = dataset_info(config)
    train = build_dataset(config, "train", 64, training=True, seed=0)
    holdout = build_dataset(config, "holdout", 256, training=False, seed=0)
"""

from spos_tf.data.config import AUGMENTATIONS, DEFAULTS, DataConfig, Defaults
from spos_tf.data.digits import SposDigits
from spos_tf.data.pipeline import ROLES, DataInfo, build_dataset, dataset_info, resolve
from spos_tf.data.preprocess import MEAN_RGB, STDDEV_RGB, normalize, preprocess_for_eval
from spos_tf.data.sources import IMAGENET_MANUAL_FILES, open_source

__all__ = [
    "AUGMENTATIONS",
    "DEFAULTS",
    "DataConfig",
    "DataInfo",
    "Defaults",
    "IMAGENET_MANUAL_FILES",
    "MEAN_RGB",
    "ROLES",
    "STDDEV_RGB",
    "SposDigits",
    "build_dataset",
    "dataset_info",
    "normalize",
    "open_source",
    "preprocess_for_eval",
    "resolve",
]
