"""A dependency-free progress display for long loops.

On a terminal it redraws one line per batch (at most ~10 times a second); when the
output is not a terminal (CI, a log file) it stays quiet until the epoch's summary,
so logs are not flooded with carriage returns.
"""
import sys
import time


class Progress:
    def __init__(self, total, prefix="", stream=None, enabled=True, min_interval=0.1):
        self.total = total
        self.prefix = prefix
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._width = 0

    def update(self, done, **values):
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        elapsed = now - self.start
        frac = done / self.total if self.total else 1.0
        bar_len = 24
        filled = int(bar_len * frac)
        bar = "#" * filled + "-" * (bar_len - filled)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        extra = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        line = (f"{self.prefix} [{bar}] {done}/{self.total} {elapsed:5.1f}s "
                f"eta {eta:4.1f}s {extra}")
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self._width = len(line)
        self.stream.flush()

    def close(self):
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
