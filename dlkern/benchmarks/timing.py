"""Timing that holds on a noisy shared machine with several thread pools in one process.

One process holds up to three thread pools: libgomp's (shared by dlkern's kernels and
PyTorch's, whichever loaded it first; MKL and oneDNN inside PyTorch use it too), and the
pthread pools of NumPy's and SciPy's OpenBLAS. After a parallel call each pool's idle
workers keep spinning on their cores before they sleep; measured on this project's
2-core machine, libgomp spins for about 8 ms (GOMP_SPINCOUNT's default 300,000 pauses)
and OpenBLAS for about 100 ms (2**28 cycles, its default THREAD_TIMEOUT). A call timed
while another pool spins shares its cores with it, and on 2 cores that slowed PyTorch's
1x1 convolution from 0.9 ms to 30 ms when calls alternated one by one.

So implementations alternate in blocks: in each round, for each implementation in a
rotating order, wait until the other threads of the process have gone quiet, make one
untimed warm-up call (it wakes this implementation's pool and refills the caches), then
time `k` calls back to back, as a user's loop would run them. A burst of load from
elsewhere still hits every implementation alike, because rounds interleave them; the
median is taken over every timed call.
"""
import os
import threading
import time

import numpy as np

#: Without /proc (not Linux), wait this long between blocks: longer than OpenBLAS's spin.
FALLBACK_GAP = 0.15


def other_threads_running():
    """How many threads of this process, the caller excluded, are running or runnable
    (state R in /proc/self/task/*/stat): an idle pool worker that still spins is R, one
    asleep on its futex or condition variable is S. None where /proc is unavailable."""
    me = threading.get_native_id()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    running = 0
    for tid in tids:
        if int(tid) == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread exited between listdir and open
        running += state == "R"
    return running


def quiesce(poll=0.001, quiet_polls=2, max_wait=0.5):
    """Sleep until every other thread of the process is asleep (idle pool workers have
    stopped spinning) at quiet_polls consecutive polls; at most max_wait seconds.
    Returns the seconds waited.

    Thread states, not CPU time, decide: on this virtual machine both cores sometimes
    stall for a few ms (time stolen by the host), and a spinning worker then uses no
    CPU for a while, which fooled a CPU-time test into calling it idle."""
    start = time.perf_counter()
    quiet = 0
    while True:
        running = other_threads_running()
        if running is None:
            time.sleep(FALLBACK_GAP)
            return FALLBACK_GAP
        quiet = quiet + 1 if running == 0 else 0
        waited = time.perf_counter() - start
        if quiet >= quiet_polls or waited >= max_wait:
            return waited
        time.sleep(poll)


def calls_per_block(seconds_per_call, block_seconds=0.02, max_calls=20):
    """How many calls to time back to back: enough to fill block_seconds, 1 to max_calls."""
    if seconds_per_call <= 0:
        return max_calls
    return int(min(max_calls, max(1, round(block_seconds / seconds_per_call))))


def measure_samples(impls, min_rounds=3, max_rounds=100, budget=1.0, block_seconds=0.02,
                    max_calls=20, quiet=quiesce, clock=time.perf_counter):
    """{name: [seconds of each timed call]} for each zero-argument callable in `impls`.

    Rounds (see the module docstring) continue until every implementation has
    min_rounds blocks and `budget` seconds (for all implementations together, waits
    included) are spent, or max_rounds. A first, untimed call of each implementation
    sizes its block."""
    names = list(impls)
    calls = {}
    for name in names:
        quiet()
        t0 = clock()
        impls[name]()
        calls[name] = calls_per_block(clock() - t0, block_seconds, max_calls)
    samples = {name: [] for name in names}
    start = clock()
    for r in range(max_rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            quiet()
            impls[name]()  # warm-up: wake this implementation's pool, refill the caches
            for _ in range(calls[name]):
                t0 = clock()
                impls[name]()
                samples[name].append(clock() - t0)
        if r + 1 >= min_rounds and clock() - start >= budget:
            break
    return samples


def summarize(samples):
    """{name: {"median": s, "iqr": s, "n": count}} of measure_samples' output."""
    out = {}
    for name, ts in samples.items():
        q1, med, q3 = np.percentile(ts, [25, 50, 75])
        out[name] = {"median": float(med), "iqr": float(q3 - q1), "n": len(ts)}
    return out


def measure(impls, min_rounds=3, max_rounds=100, budget=1.0, **kwargs):
    """Median seconds per call for each zero-argument callable in `impls` (a dict)."""
    samples = measure_samples(impls, min_rounds, max_rounds, budget, **kwargs)
    return {name: float(np.median(ts)) for name, ts in samples.items()}


def _cpu_seconds():
    """(CPU seconds used by every process on the machine, by this process), from /proc;
    None where /proc is unavailable. Both count in clock ticks (10 ms on Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        with open("/proc/self/stat") as f:
            mine = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))
    return busy / hz, (int(mine[11]) + int(mine[12])) / hz  # utime + stime


class OtherLoad:
    """Cores used by other processes (and stolen by the hypervisor) while the block runs:
    with 2 cores, any of it stalls a 2-thread parallel region by scheduler ticks.

        with OtherLoad() as load: ...
        load.cores  # average number of cores busy outside this process
    """

    def __enter__(self):
        self._t0, self._cpu0 = time.perf_counter(), _cpu_seconds()
        self.cores = None
        return self

    def __exit__(self, *exc):
        cpu1 = _cpu_seconds()
        wall = time.perf_counter() - self._t0
        if self._cpu0 is not None and cpu1 is not None and wall > 0:
            others = (cpu1[0] - self._cpu0[0]) - (cpu1[1] - self._cpu0[1])
            self.cores = max(0.0, others / wall)
        return False
