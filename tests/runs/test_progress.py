"""The console progress bar (spos_tf.runs.progress)."""

import io

from spos_tf.runs.progress import ProgressBar, format_duration


def test_progress_bar_prints_eta_lines():
    assert format_duration(65) == "1:05" and format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?"
    out = io.StringIO()
    bar = ProgressBar(10, stream=out, interactive=False, log_interval_s=0.0)
    for step in range(1, 11):
        bar.update(step, loss=0.5)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("1/10 [") and "ETA ?" in lines[0]
    assert lines[-1].startswith("10/10 [=====") and "ETA 0:00" in lines[-1]
    assert "loss 0.5" in lines[-1]


def test_a_resumed_bar_measures_its_eta_from_the_steps_run_here():
    """Resumed at step 900 of 1000: 10 steps in 10 s leave 90 steps = 90 s (an ETA from the
    elapsed time over all 910 steps, as Keras' Progbar computes it, would say about 1 s)."""
    bar = ProgressBar(1000, initial=900, stream=io.StringIO(), interactive=False)
    bar.update(900)
    start, _ = bar._start
    assert bar.eta_seconds(910, now=start + 10.0) == 90.0
