"""SearchSpace.canonical: in a cell space, the ops that cannot change the output become none.

Hand-worked cells first (NAS-Bench-201 edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), then the
claim itself, checked on a supernet: architectures with equal canonical forms give the same
logits (training-mode forward, so BN uses the path's own batch statistics, as recalibration
does), and a pair with different canonical forms does not."""

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import spaces


@pytest.fixture(scope="module")
def space():
    return spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))


@pytest.mark.parametrize(
    "cell, canonical",
    [
        # nodes 1 and 2 get only none edges: their outgoing convs act on zeros
        ("0,0,0,3,2,3", "0,0,0,3,0,0"),
        # node 2 carries a conv of the input but its only way out (2->3) is none
        ("0,3,4,3,3,0", "0,0,0,3,0,0"),
        # node 1 carries the input but feeds nothing; the output node gets nothing
        ("1,0,0,0,0,0", "0,0,0,0,0,0"),
        # every edge can matter
        ("3,3,3,3,3,3", "3,3,3,3,3,3"),
        ("3,1,3,3,0,3", "3,1,3,3,0,3"),
        # the chain 0->1->2->3 with skips: every edge on it matters, the rest are none already
        ("1,0,1,0,0,1", "1,0,1,0,0,1"),
    ],
)
def test_canonical_form_of_hand_worked_cells(space, cell, canonical):
    assert str(space.canonical(space.parse(cell))) == canonical


def test_chain_spaces_are_returned_unchanged():
    chain = spaces.get("shufflenet_oneshot", image_size=16, num_classes=10)
    arch = chain.sample(np.random.default_rng(0))
    assert chain.canonical(arch) == arch


def test_equal_canonical_forms_give_equal_logits_on_the_supernet(space):
    net = spos_tf.build_supernet(space, seed=0)
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 8, 8, 3)), tf.float32)

    def logits(cell):
        net.set_arch(space.parse(cell))
        return net(x, training=True).numpy()

    reference = logits("0,0,0,3,0,0")
    for cell in ("0,0,0,3,2,3", "0,3,4,3,3,0", "0,0,4,3,3,2"):
        assert space.canonical(space.parse(cell)) == space.parse("0,0,0,3,0,0")
        np.testing.assert_array_equal(logits(cell), reference)
    # a live edge changes them: 2->3 conv on a non-zero node 2
    assert not np.allclose(logits("0,3,0,3,0,3"), reference)


def _search(space, tmp_path, skip_equivalent):
    """The search app's evolution oracle over the cell space, driven for 200 candidates with a
    score that depends only on the function (3x3 convs that matter), as a supernet's would."""
    from keras_tuner.engine.trial import TrialStatus

    from spos_tf.search.config import SearchConfig
    from spos_tf.search.tuner import OBJECTIVE, make_oracle

    config = SearchConfig(
        supernet_dir="/unused",
        workdir=str(tmp_path),
        skip_equivalent=skip_equivalent,
        max_trials=200,
        population_size=20,
        num_parents=5,
        num_crossover=8,
        num_mutation=8,
        seed=0,
    )
    oracle = make_oracle("evolution", config, space)
    oracle._set_project_dir(str(tmp_path), f"skip_{skip_equivalent}")
    oracle.save = lambda: None  # no oracle.json per call: only the proposals matter here
    oracle._save_trial = lambda trial: None
    archs = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status != TrialStatus.RUNNING:
            break
        arch = space.from_values(trial.hyperparameters.values)
        archs.append(arch)
        score = sum(op == space.ops.index("nor_conv_3x3") for op in space.canonical(arch).genes[0])
        oracle.update_trial(trial.trial_id, {OBJECTIVE: float(score)})
        trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
    return archs


@pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")
def test_search_with_skip_equivalent_scores_each_function_once(space, tmp_path):
    deduped = [space.canonical(a) for a in _search(space, tmp_path, skip_equivalent=True)]
    assert len(deduped) == 200 and len(set(deduped)) == 200
    plain = [space.canonical(a) for a in _search(space, tmp_path, skip_equivalent=False)]
    assert len(plain) == 200 and len(set(plain)) < 200  # the default re-scores some functions
