"""Timing that holds on a noisy shared machine.

Every implementation of a case is warmed up, then timed in rounds; within a round
the implementations run one after the other in a rotating order, so a burst of
load from elsewhere hits all of them alike. The median over rounds is reported.
"""
import time

import numpy as np


def measure(impls, min_rounds=5, max_rounds=200, budget=1.0):
    """Median seconds per call for each zero-argument callable in `impls` (a dict).

    Rounds continue until every implementation has min_rounds timings and the time
    budget (seconds, for all implementations together) is spent, or max_rounds."""
    names = list(impls)
    for name in names:  # warm-up: caches, lazy allocations, thread pools
        impls[name]()
    times = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(max_rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            impls[name]()
            times[name].append(time.perf_counter() - t0)
        if r + 1 >= min_rounds and time.perf_counter() - start >= budget:
            break
    return {name: float(np.median(ts)) for name, ts in times.items()}
