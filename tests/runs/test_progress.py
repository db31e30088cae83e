"""The console progress display (spos_tf.runs.progress): tqdm lines with step counts, ETA and
metrics; full lines at intervals when not a terminal, one line redrawn in place on a terminal."""

import io

from spos_tf.runs.progress import ProgressBar, format_duration


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_format_duration():
    assert format_duration(65) == "1:05" and format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?" and format_duration(-1) == "?"
    assert format_duration(float("inf")) == "?" and format_duration(float("nan")) == "?"


def test_without_a_terminal_it_prints_a_line_per_interval_and_the_last():
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(10, stream=out, interactive=False, log_interval_s=30.0, clock=clock)
    for step in range(1, 11):  # one step every 10 s
        bar.update(step, loss=0.123456, arch="0,1")
        clock.t += 10.0
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split("|")[2].split()[0] for line in lines] == ["1/10", "4/10", "7/10", "10/10"]
    assert "<?" in lines[0]  # no step timed yet
    assert "4/10 [00:30<01:00" in lines[1]  # 3 steps in 30 s: 6 left = 60 s
    assert lines[-1].startswith("100%|##########| 10/10 [01:30<00:00")
    assert all(line.endswith("loss=0.1235, arch=0,1]") for line in lines)


def test_a_resumed_bar_measures_its_eta_from_the_steps_run_here():
    """Resumed at step 900 of 1000: 10 steps in 10 s leave 90 steps = 90 s (an ETA from the
    elapsed time over all 910 steps, as Keras' Progbar computes it, would say about 1 s)."""
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(1000, initial=900, stream=out, interactive=False, clock=clock)
    bar.update(900)
    clock.t += 40.0
    bar.update(910)
    last = out.getvalue().splitlines()[-1]
    assert "910/1000 [00:40<06:00" in last  # 10 steps in 40 s: 90 left = 360 s


def test_on_a_terminal_one_line_is_redrawn_in_place():
    out = io.StringIO()
    bar = ProgressBar(5, stream=out, interactive=True, min_interval_s=0.0)
    for step in range(1, 6):
        bar.update(step, loss=0.5)
    assert "\n" not in out.getvalue()  # redrawn with carriage returns until closed
    assert out.getvalue().count("\r") >= 5
    bar.close()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert "5/5" in text.split("\r")[-1] and "loss=0.5" in text.split("\r")[-1]


def test_disabled_writes_nothing():
    out = io.StringIO()
    for interactive in (True, False):
        bar = ProgressBar(3, stream=out, interactive=interactive, enabled=False)
        bar.update(1, loss=0.1)
        bar.update(3)
        bar.close()
    assert out.getvalue() == ""
