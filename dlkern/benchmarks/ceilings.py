"""The machine's practical limits, measured in the same run as the kernels.

FLOP ceiling: a large float32 GEMM on dlkern's own GEMM (src/gemm.c).
Bandwidth ceiling: a large array copy (bytes read + written per second). NumPy's
copy runs on one thread, so the ceiling is the better of it and two concurrent
half-copies (threads release the GIL inside the copy).
"""
import threading

import numpy as np

from dlkern import _gemm
from dlkern.benchmarks.timing import measure


def gemm_gflops(n=2048, dtype=np.float32, budget=1.0):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    t = measure({"gemm": lambda: _gemm.gemm(a, b)}, min_rounds=3, budget=budget)["gemm"]
    return 2.0 * n**3 / t / 1e9


def copy_gbps(nbytes=256 * 2**20, budget=1.0):
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    half = src.size // 2

    def one_thread():
        np.copyto(dst, src)

    def two_threads():
        worker = threading.Thread(target=np.copyto, args=(dst[half:], src[half:]))
        worker.start()
        np.copyto(dst[:half], src[:half])
        worker.join()

    t = measure({"1": one_thread, "2": two_threads}, min_rounds=3, budget=budget)
    return 2.0 * nbytes / min(t.values()) / 1e9
