"""`dlkern bench`'s measuring machinery: block alternation, waiting for idle pools,
per-size copy ceilings, the GEMM candidates, the issue-5 target column and the JSON."""
import json
import sys
import threading
import time

import numpy as np
import pytest

from dlkern.benchmarks import ceilings, targets, timing
from dlkern.benchmarks.report import make_row, table
from dlkern.testing import torch_or_none

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


class FakeClock:
    """A clock each fake implementation advances by its own duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _fake_impls(clock, log, durations):
    def make(name, seconds):
        def run():
            log.append(name)
            clock.now += seconds
        return run
    return {name: make(name, s) for name, s in durations.items()}


def test_calls_per_block_fills_the_block_within_bounds():
    assert timing.calls_per_block(0.01, block_seconds=0.02) == 2
    assert timing.calls_per_block(1.0, block_seconds=0.02) == 1
    assert timing.calls_per_block(1e-6, block_seconds=0.02, max_calls=20) == 20
    assert timing.calls_per_block(0.0) == 20


def test_measure_alternates_in_blocks_with_a_wait_and_a_warm_up_before_each():
    clock, log = FakeClock(), []
    impls = _fake_impls(clock, log, {"a": 0.01, "b": 0.001})  # blocks of 2 and 20 calls
    samples = timing.measure_samples(impls, min_rounds=2, budget=0.0, block_seconds=0.02,
                                     quiet=lambda: log.append("Q"), clock=clock)
    a_block = ["Q"] + ["a"] * 3   # wait, warm-up, 2 timed calls
    b_block = ["Q"] + ["b"] * 21  # wait, warm-up, 20 timed calls
    sizing = ["Q", "a", "Q", "b"]
    # round 0 runs a then b; round 1 rotates the order
    assert log == sizing + a_block + b_block + b_block + a_block
    assert samples["a"] == pytest.approx([0.01] * 4)
    assert samples["b"] == pytest.approx([0.001] * 40)


def test_measure_rounds_continue_until_the_budget_is_spent():
    clock, log = FakeClock(), []
    impls = _fake_impls(clock, log, {"a": 0.05, "b": 0.05})
    samples = timing.measure_samples(impls, min_rounds=1, budget=0.5, block_seconds=0.01,
                                     quiet=lambda: None, clock=clock)
    # each round: 2 blocks of warm-up + 1 timed call = 0.2 s; 3 rounds reach 0.5 s
    assert len(samples["a"]) == len(samples["b"]) == 3
    assert timing.measure(impls, min_rounds=1, max_rounds=1, budget=0, quiet=lambda: None,
                          clock=clock) == {"a": pytest.approx(0.05), "b": pytest.approx(0.05)}


def test_summarize_gives_median_iqr_and_count():
    s = timing.summarize({"x": [1.0, 2.0, 3.0, 4.0, 100.0]})["x"]
    assert s["median"] == 3.0 and s["n"] == 5 and s["iqr"] == pytest.approx(2.0)


@linux
def test_quiesce_waits_for_a_spinning_thread():
    assert timing.other_threads_running() is not None
    stop = threading.Event()

    def spin():  # a pool worker still spinning after its work
        t_end = time.perf_counter() + 0.06
        while time.perf_counter() < t_end:
            pass
        stop.wait()

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        time.sleep(0.005)
        waited = timing.quiesce(max_wait=1.0)
        assert 0.03 < waited < 1.0
        assert timing.other_threads_running() == 0
    finally:
        stop.set()
        worker.join()
    assert timing.quiesce() < 0.05  # nothing spins: returns at once


@linux
def test_other_load_reports_cores_used_elsewhere():
    with timing.OtherLoad() as load:
        time.sleep(0.02)
    assert load.cores is not None and load.cores >= 0


def test_copy_impls_copy_and_count_read_plus_written_bytes():
    from concurrent.futures import ThreadPoolExecutor

    torch = torch_or_none()
    with ThreadPoolExecutor(1) as pool:
        impls, moved, dst = ceilings.copy_impls(1000 * 8 + 3, threads=2, pool=pool,
                                                torch=torch)
        assert moved == 2 * dst.nbytes == 8000
        assert {"numpy copyto", "numpy copyto on 2 threads"} <= set(impls)
        assert ("torch copy_" in impls) == (torch is not None)
        for run in impls.values():
            dst[:] = 0
            run()
            assert np.all(dst == 1)
    assert ceilings.copy_gbps(64 * 1024, threads=2, budget=0.01) > 0


def test_copy_ceilings_measure_each_size_once_and_combine_calls_by_time():
    seen = []

    def gbps(nbytes, **kw):
        seen.append(nbytes)
        return {1000: 100.0, 3000: 50.0}[nbytes]

    copies = ceilings.CopyCeilings(threads=1, gbps=gbps)
    assert copies(1000) == 100.0 and copies(1000) == 100.0
    # 1000 B at 100 GB/s (10 ns) then 3000 B at 50 GB/s (60 ns): 4000 B in 70 ns
    assert copies.for_passes((1000, 3000)) == pytest.approx(4000 / 70e-9 / 1e9)
    assert seen == [1000, 3000]
    copies.close()


def test_gemm_candidates_multiply_and_include_every_available_gemm():
    torch = torch_or_none()
    cands = ceilings.gemm_candidates(n=32, torch=torch)
    assert {"dlkern gemm", "numpy matmul"} <= set(cands)
    assert ("torch.mm" in cands) == (torch is not None)
    want = np.asarray(cands["numpy matmul"]())
    for name, run in cands.items():
        got = run()
        got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    gflops = ceilings.gemm_gflops(n=64, torch=torch, budget=0.01)
    assert set(gflops) == set(cands) and min(gflops.values()) > 0


def _row(family, kernel, shape, **times):
    return make_row(family, kernel, shape, times, "GB/s", 1e9, 100.0, large_copy_gbps=100.0)


def test_target_minimums_follow_issue_5():
    m = targets.minimums
    assert m({"family": "conv2d", "kernel": "conv2d fwd", "shape": "ResNet 3x3 N16"}) == {
        "ref": 2.0, "torch": 1.0, "ceil": 70.0}
    assert m({"family": "conv2d", "kernel": "conv2d fwd+bwd", "shape": "depthwise 3x3"}) == {
        "ref": 2.0, "torch": 2.0}
    assert m({"family": "pooling", "kernel": "max_pool2d fwd", "shape": "(32, 64)"}) == {
        "ref": 5.0, "torch": 2.0, "ceil": 50.0}
    assert m({"family": "activations", "kernel": "relu fwd", "shape": "x"}) == {"ref": 5.0}
    assert m({"family": "causal_conv1d", "kernel": "causal_conv1d fwd", "shape": "x"}) == {
        "ref": 2.0}
    assert m({"family": "causal_conv1d", "kernel": "causal_conv1d fwd+bwd", "shape": "x"})[
        "torch"] == 1.5
    assert m({"family": "linear", "kernel": "linear fwd", "shape": "x"}) == {"ref": 2.0}
    assert m({"family": "train step", "kernel": "train step", "shape": "x"}) == {"torch": 1.0}


def test_target_column_says_met_missed_or_unmeasured():
    # 1 s of work at 1 s is 1 GB/s = 1% of a 100 GB/s ceiling: ceil missed
    row = _row("softmax", "softmax fwd", "(256, 1000)", dlkern=1.0, reference=10.0, torch=3.0)
    assert row["pct"] == pytest.approx(1.0) and row["vs_ref"] == pytest.approx(10.0)
    assert row["target"] == "missed: ceil"
    assert [c["figure"] for c in row["targets"] if c["met"] is False] == ["ceil"]
    row = _row("activations", "relu fwd", "x", dlkern=1.0, reference=4.0)
    assert row["target"] == "missed: ref"
    assert _row("activations", "relu fwd", "x", dlkern=1.0, reference=5.0)["target"] == "met"
    # PyTorch not installed: the torch figure is unknown, not missed
    row = make_row("train step", "train step", "digits", {"dlkern": 1.0})
    assert row["target"] == "?" and row["vs_torch"] is None
    assert targets.verdict([]) == "-"


def test_bandwidth_target_reads_the_large_copy_and_pct_the_rows_own_copy():
    # 0.1 GB in 1 ms = 100 GB/s: 50% of a 200 GB/s in-cache copy of the same bytes,
    # 250% of a 40 GB/s large (DRAM) copy, which is the ceiling the issue's target names
    row = make_row("pooling", "max_pool2d fwd", "s", {"dlkern": 1e-3, "reference": 1.0,
                   "torch": 1.0}, "GB/s", 1e8, 200.0, large_copy_gbps=40.0)
    assert row["pct"] == pytest.approx(50.0)
    assert row["pct_large_copy"] == pytest.approx(250.0)
    assert row["target"] == "met"
    row = make_row("pooling", "max_pool2d fwd", "s", {"dlkern": 1e-3, "reference": 1.0,
                   "torch": 1.0}, "GB/s", 1e8, 50.0, large_copy_gbps=400.0)
    assert row["target"] == "missed: ceil"
    gemm = make_row("conv2d", "conv2d fwd", "ResNet 3x3", {"dlkern": 1e-3}, "GFLOP/s", 1e8,
                    200.0, large_copy_gbps=40.0)
    assert gemm["pct_large_copy"] is None and gemm["pct"] == pytest.approx(50.0)


def test_pct_uses_the_rows_own_ceiling():
    a = make_row("pooling", "max_pool2d fwd", "s", {"dlkern": 1e-3}, "GB/s", 1e8, 200.0)
    b = make_row("pooling", "max_pool2d fwd", "s", {"dlkern": 1e-3}, "GB/s", 1e8, 50.0)
    assert a["rate"] == b["rate"] == pytest.approx(100.0)
    assert a["pct"] == pytest.approx(50.0) and b["pct"] == pytest.approx(200.0)


def test_table_shows_every_gemm_candidate_and_the_target_column():
    ceil = {"threads": 2, "gemm_n": 2048, "gemm": {"scipy sgemm": 110.0, "torch.mm": 190.0},
            "gemm_best": "torch.mm", "gflops": 190.0, "dram_bytes": 2**28, "dram_gbps": 40.0}
    rows = [_row("softmax", "softmax fwd", "(256, 1000)", dlkern=1.0, reference=10.0,
                 torch=3.0)]
    rows[0]["other_load"] = 0.5
    text = table(rows, ceil)
    assert "scipy sgemm 110" in text and "torch.mm 190" in text and "best 190 (torch.mm)" in text
    assert "missed: ceil" in text and "targets: 0 of 1 rows met" in text
    assert "other processes" in text


def test_measure_quietly_measures_again_under_outside_load(monkeypatch):
    from dlkern.commands import bench

    loads = iter([0.9, 0.5, 0.7])

    class FakeLoad:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.cores = next(loads)

    monkeypatch.setattr(timing, "OtherLoad", FakeLoad)
    calls = []
    stats, load = bench.measure_quietly({"dlkern": lambda: calls.append(1)}, budget=0.0)
    assert load == 0.5 and stats["dlkern"]["n"] > 0  # the quietest of 3 attempts
    loads = iter([0.05, 0.9])
    _, load = bench.measure_quietly({"dlkern": lambda: None}, budget=0.0)
    assert load == 0.05  # quiet at once: no second attempt


def test_bench_json_has_the_ceilings_targets_and_per_size_copy(tmp_path, capsys,
                                                                monkeypatch):
    from dlkern.__main__ import main
    from dlkern.commands import bench

    # small ceilings keep the test fast; their use is what is tested
    gemm = ceilings.gemm_gflops
    monkeypatch.setattr(ceilings, "gemm_gflops", lambda **kw: gemm(n=256, **kw))
    monkeypatch.setattr(bench, "DRAM_BYTES", 2**20)

    main(["bench", "--quick", "--filter", "relu fwd", "--out", str(tmp_path), "--no-torch"])
    out = capsys.readouterr().out
    assert "target" in out and "dlkern gemm" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    c = data["ceilings"]
    assert c["gflops"] == max(c["gemm"].values()) == c["gemm"][c["gemm_best"]]
    assert c["dram_gbps"] > 0 and data["meta"]["threads"] >= 1
    assert (tmp_path / "speedups.png").exists()
    copy = {int(n): g for n, g in c["copy_gbps"].items()}
    rows = {r["kernel"]: r for r in data["rows"]}
    fwd, both = rows["relu fwd"], rows["relu fwd+bwd"]
    for r in (fwd, both):
        assert {"times", "spread", "rate", "ceiling", "ceiling_basis", "pct", "vs_ref",
                "vs_torch", "targets", "target", "other_load"} <= set(r)
        assert r["pct"] == pytest.approx(100 * r["rate"] / r["ceiling"])
    # forward: one call, a copy of its own bytes; fwd+bwd: a copy per call, times added
    assert fwd["ceiling"] == pytest.approx(copy[fwd["work"]])
    f, b = fwd["work"], both["work"] - fwd["work"]
    assert both["ceiling"] == pytest.approx(both["work"] / (f / copy[f] + b / copy[b]))
