"""Console progress for training, search and ranking loops: tqdm, started at the first step.

On a terminal a ``tqdm`` bar redraws one line in place (at most every ``min_interval_s``);
otherwise (logs, pipes, CI) the same tqdm line (``tqdm.format_meter``) is printed as a full line
every ``log_interval_s`` and at the last step, so log files stay short (a tqdm bar would write
carriage-return-separated redraws there). Either way the line shows the step count, the ETA and
the loop's metrics, e.g. ``40%|####      | 4/10 [00:30<01:00, 10.00s/it, loss=0.5]``.

The ETA is measured from the first update (the bar starts there, at that step; tqdm's rate is
``(n - initial) / elapsed`` without smoothing), so start-up and tracing time do not distort it,
and a run resumed at step ``initial`` extrapolates from the steps it ran itself (Keras' Progbar
divides the elapsed time by every step up to the current one, as if they had all run in this
process). Plain Python, no TensorFlow.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``, ``65`` -> ``"1:05"``; negative or unknown -> ``"?"`` (report
    text of ``spos_tf.rank`` and ``spos_tf.pipeline``)."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _postfix(values: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


class ProgressBar:
    """``bar = ProgressBar(total, initial=start_step); bar.update(step, loss=0.3); bar.close()``.

    Args:
      total: the last step.
      initial: the step the run starts from (a resumed run starts at its checkpoint); the bar
        itself starts at the step of the first :meth:`update`.
      stream: where to write (default ``sys.stdout``).
      interactive: redraw in place (a tqdm bar); default: whether ``stream`` is a terminal.
      enabled: ``False`` turns every call into a no-op (non-chief workers, tests).
      min_interval_s: least time between two redraws on a terminal.
      log_interval_s: time between two printed lines when not interactive.
      clock: seconds, monotonic (the time base of the printed lines' rate and ETA).
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        stream=None,
        interactive: bool | None = None,
        enabled: bool = True,
        min_interval_s: float = 0.2,
        log_interval_s: float = 30.0,
        clock=time.monotonic,
    ):
        self.total, self.initial = int(total), int(initial)
        self.stream = stream or sys.stdout
        self.interactive = (
            interactive
            if interactive is not None
            else bool(getattr(self.stream, "isatty", lambda: False)())
        )
        self.enabled = enabled
        self.min_interval_s, self.log_interval_s = min_interval_s, log_interval_s
        self.clock = clock
        self._bar = None  # the tqdm bar (interactive), from the first update
        self._start = None  # (time, step) of the first update (lines)
        self._last_line = None

    def update(self, step: int, **values) -> None:
        """Shows ``step`` of ``total`` with ``values`` (floats to 4 significant digits); the last
        step is always shown."""
        if not self.enabled:
            return
        step = int(step)
        final = step >= self.total
        if self.interactive:
            if self._bar is None:  # the first step includes tracing: measure from its end
                self._bar = tqdm(
                    total=self.total,
                    initial=step,
                    file=self.stream,
                    mininterval=self.min_interval_s,
                    smoothing=0,
                    dynamic_ncols=True,
                    leave=True,
                    disable=False,
                    postfix=_postfix(values),
                )
            else:
                self._bar.set_postfix_str(_postfix(values), refresh=False)
                self._bar.update(step - self._bar.n)
            if final:
                self._bar.refresh()
            return
        now = self.clock()
        if self._start is None:
            self._start = (now, step)
        elif not final and now - self._last_line < self.log_interval_s:
            return
        self._last_line = now
        start_time, start_step = self._start
        text = tqdm.format_meter(
            step,
            self.total,
            now - start_time,
            ascii=True,
            postfix=_postfix(values) or None,
            initial=start_step,
        )
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the in-place line (call before printing anything else); a later :meth:`update`
        starts a new bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
