"""spos_tf.runs.flagfiles: a flag file parsed into its app's typed config, as the command line would."""

from pathlib import Path

import pytest
from absl import flags

from spos_tf.runs.flagfiles import config_from_flagfile
from spos_tf.search.config import SearchConfig
from spos_tf.train.config import TrainConfig

FLAGS_DIR = Path(__file__).resolve().parents[2] / "flags"


def test_train_flag_file_gives_its_settings_nested_config_and_overrides():
    config = config_from_flagfile(
        "train", FLAGS_DIR / "tiny_retrain.cfg", ["--workdir=/w", "--steps=7"]
    )
    assert isinstance(config, TrainConfig)
    assert (config.steps, config.workdir, config.batch_size) == (7, "/w", 32)  # overrides win
    assert (config.arch, config.eval_split, config.final_bn_augment) == ("2,1,0,3", "test", True)
    assert config.data.name == "spos_digits"  # --dataset fills the nested DataConfig
    # the space override flags become space_overrides, typed
    assert config.space_overrides == {"image_size": 8, "width": 0.125, "repeats": (1, 1, 1, 1)}
    config.validate()


def test_search_flag_file_gives_a_search_config_and_leaves_the_global_flags_alone():
    defined = "max_trials" in flags.FLAGS
    config = config_from_flagfile(
        "search", FLAGS_DIR / "tiny_search.cfg", ["--supernet_dir=/s", "--workdir=/w"]
    )
    assert isinstance(config, SearchConfig)
    assert (config.algorithm, config.max_trials, config.max_macs) == ("both", 24, 2.5e6)
    assert (config.supernet_dir, config.workdir) == ("/s", "/w")
    assert ("max_trials" in flags.FLAGS) == defined  # parsed on a FlagValues of its own


def test_bad_input_names_the_file_or_the_apps(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("--steps=12\n")  # a train flag, not a search one
    with pytest.raises(ValueError, match="bad.cfg"):
        config_from_flagfile("search", bad)
    with pytest.raises(ValueError, match="does not exist"):
        config_from_flagfile("train", tmp_path / "missing.cfg")
    with pytest.raises(KeyError, match="search"):
        config_from_flagfile("export", bad)
