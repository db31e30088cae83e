"""spos_tf.train.eval: the run's evaluation, against an accuracy computed directly with Keras, and
the fixed evaluation paths of the supernet."""

import numpy as np
import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
from spos_tf.runs import run_dir
from spos_tf.data import build_dataset
from spos_tf.models.sampling import ArchSampler
from spos_tf.train.config import resolve
from spos_tf.train.eval import EVAL_STEP_OFFSET, Evaluator

from _train_checks import parse_flagfile


@pytest.mark.slow
def test_standalone_accuracy_is_top1_on_the_eval_split_and_leaves_the_model(data_dir):
    resolved = resolve(parse_flagfile("tiny_retrain.cfg", "--workdir=/w", f"--data_dir={data_dir}"))
    config = resolved.config
    model = run_dir.build_model(config.to_dict(), resolved.space)
    evaluator = Evaluator(resolved)
    before = [w.copy() for w in model.get_weights()]
    record = evaluator.evaluate(model)
    assert evaluator.paths == [resolved.arch] and record["eval_split"] == "test"

    correct = count = 0  # the same images through the model itself, in inference mode
    for images, labels in build_dataset(
        config.data, "test", config.eval_batch_size, training=False, seed=config.seed, repeat=False
    ).take(config.eval_batches):
        predicted = np.argmax(model(images, training=False).numpy(), -1)
        correct += int(np.sum(predicted == labels.numpy()))
        count += len(labels)
    assert count == 150
    assert record["val_accuracy"] == pytest.approx(correct / count, abs=1e-12)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_supernet_paths_are_fixed_and_far_from_the_training_steps(data_dir):
    resolved = resolve(
        parse_flagfile(
            "tiny_supernet.cfg", "--workdir=/w", f"--data_dir={data_dir}", "--eval_paths=3"
        )
    )
    evaluator = Evaluator(resolved)
    sampler = ArchSampler(resolved.space, 0)
    assert evaluator.paths == [sampler(2**40 + i) for i in range(3)]
    assert EVAL_STEP_OFFSET == 2**40
