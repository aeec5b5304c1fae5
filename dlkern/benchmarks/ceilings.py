"""The machine's practical limits, measured in the same run as the kernels.

FLOP ceiling: the best of several large float32 GEMMs: dlkern's own (src/gemm.c, the
one its GEMM-based kernels run), NumPy's matmul (its OpenBLAS may not know this CPU and
run older kernels) and torch.mm when installed. Each is reported; the practical
ceiling is the fastest.

Bandwidth ceiling: an array copy moving the same number of bytes (read + written) as
the kernel call it is compared with, because a 1-16 MB working set sits in the 32 MiB
L3 and a DRAM-sized copy understates what the hardware gives it. A forward+backward
case is two calls, so its ceiling time is the sum of a copy per call. The best of
several copies counts: NumPy's copyto on one thread and split over `threads` threads,
and torch's copy_ when PyTorch is installed. Measured here, glibc's memcpy (behind
copyto) switches to non-temporal stores above about 1 MiB, which bypass the cache:
an 8 MiB copyto ran at 83-108 GB/s while torch's copy_ (chunked, two threads) ran at
165-181 GB/s, so without torch the in-cache ceiling is understated.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dlkern.benchmarks.timing import measure


def _square(n, dtype=np.float32):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, n)).astype(dtype),
            rng.standard_normal((n, n)).astype(dtype))


def gemm_candidates(n=2048, torch=None):
    """{name: zero-argument callable} multiplying two n x n float32 matrices."""
    from dlkern import _gemm

    a, b = _square(n)
    out = {"dlkern gemm": lambda: _gemm.gemm(a, b), "numpy matmul": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch.mm"] = lambda: torch.mm(ta, tb)
    return out


def gemm_gflops(n=2048, torch=None, budget=1.0):
    """{name: GFLOP/s} of each GEMM candidate, timed alternately in one measurement."""
    times = measure(gemm_candidates(n, torch), min_rounds=3, budget=budget)
    return {name: 2.0 * n**3 / t / 1e9 for name, t in times.items()}


def copy_impls(nbytes, threads=1, pool=None, torch=None):
    """({name: callable}, bytes moved, destination): callables copying a float32 array
    of ones of nbytes // 2 bytes into the destination, so that
    about nbytes are read + written: NumPy's copyto, with threads > 1 and a
    ThreadPoolExecutor of threads - 1 workers the same split over `threads` threads,
    and torch's copy_ (on torch's threads) when torch is given."""
    src = np.ones(max(1, nbytes // 8), np.float32)
    dst = np.empty_like(src)
    impls = {"numpy copyto": lambda: np.copyto(dst, src)}
    if torch is not None:
        tsrc, tdst = torch.from_numpy(src), torch.from_numpy(dst)
        impls["torch copy_"] = lambda: tdst.copy_(tsrc)
    if threads > 1 and pool is not None:
        bounds = np.linspace(0, src.size, threads + 1).astype(int)
        parts = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]

        def split():
            futures = [pool.submit(np.copyto, d, s) for d, s in parts[1:]]
            np.copyto(*parts[0])
            for f in futures:
                f.result()

        impls[f"numpy copyto on {threads} threads"] = split
    return impls, 2 * src.nbytes, dst


def copy_gbps(nbytes=256 * 2**20, threads=1, budget=0.3, pool=None, torch=None):
    """Bytes read + written per second (GB/s) by the best copy moving about nbytes."""
    own = pool is None and threads > 1
    if own:
        # A persistent pool: starting a thread per call costs more than a small copy.
        pool = ThreadPoolExecutor(threads - 1)
    try:
        impls, moved, _ = copy_impls(nbytes, threads, pool, torch)
        times = measure(impls, min_rounds=3, budget=budget)
    finally:
        if own:
            pool.shutdown()
    return moved / min(times.values()) / 1e9


class CopyCeilings:
    """Copy bandwidth per byte count, each size measured once per run, on first use."""

    def __init__(self, threads=1, budget=0.3, torch=None, gbps=None):
        self.threads, self.budget, self.torch, self.by_size = threads, budget, torch, {}
        self._gbps = gbps or copy_gbps  # injectable for tests
        self._pool = ThreadPoolExecutor(threads - 1) if threads > 1 else None

    def __call__(self, nbytes):
        """GB/s of the best copy moving nbytes (read + written)."""
        nbytes = int(nbytes)
        if nbytes not in self.by_size:
            self.by_size[nbytes] = self._gbps(nbytes, threads=self.threads,
                                              budget=self.budget, pool=self._pool,
                                              torch=self.torch)
        return self.by_size[nbytes]

    def for_passes(self, passes):
        """GB/s ceiling of a sequence of kernel calls moving passes[i] bytes each: their
        total bytes over the sum of the copy times at each call's own size."""
        seconds = sum(n / (self(n) * 1e9) for n in passes)
        return sum(passes) / seconds / 1e9

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def copy_benchmark(benchmark, nbytes, threads=1, torch=None):
    """The bandwidth ceiling in a pytest-benchmark file: picks the fastest copy moving
    nbytes (copy_impls) with a short measurement, times it with `benchmark`, checks the
    copy and records its GB/s. Returns the chosen copy's name."""
    from dlkern.testing import record_rate

    pool = ThreadPoolExecutor(threads - 1) if threads > 1 else None
    try:
        impls, moved, dst = copy_impls(nbytes, threads, pool, torch)
        times = measure(impls, min_rounds=2, budget=0.05)
        best = min(times, key=times.get)
        benchmark.extra_info["copy"] = best
        dst[:] = 0
        benchmark(impls[best])
        assert np.all(dst == 1), f"{best} did not copy"
    finally:
        if pool is not None:
            pool.shutdown()
    record_rate(benchmark, nbytes=moved)
    return best
