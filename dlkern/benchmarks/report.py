"""The bench report: a text table, the same rows as JSON, and a chart of speedups."""
import json

from dlkern.benchmarks.targets import check, verdict


def _fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _fmt(value, spec, suffix=""):
    return "-" if value is None else f"{value:{spec}}{suffix}"


def make_row(family, kernel, shape, times, unit=None, work=None, ceiling=None, spread=None,
             ceiling_basis=None, large_copy_gbps=None):
    """One report row: medians `times` {impl: s}, dlkern's rate (work / time, in GFLOP/s
    or GB/s as `unit` says), its percentage of `ceiling` (same unit, measured in this
    run), for GB/s rows also of `large_copy_gbps` (the large memory copy that issue 5
    names as the bandwidth ceiling), the speedups over the reference and PyTorch, and
    the targets of issue 5."""
    t = times["dlkern"]
    rate = work / t / 1e9 if work is not None else None
    row = {"family": family, "kernel": kernel, "shape": shape, "unit": unit, "work": work,
           "times": times, "spread": spread, "rate": rate, "ceiling": ceiling,
           "ceiling_basis": ceiling_basis,
           "pct": 100 * rate / ceiling if rate is not None and ceiling else None,
           "pct_large_copy": (100 * rate / large_copy_gbps
                              if rate is not None and large_copy_gbps and unit == "GB/s"
                              else None),
           "vs_ref": times["reference"] / t if "reference" in times else None,
           "vs_torch": times["torch"] / t if "torch" in times else None}
    row["targets"] = check(row)
    row["target"] = verdict(row["targets"])
    return row


def header(ceilings):
    gemm = ", ".join(f"{name} {g:.0f}" for name, g in ceilings["gemm"].items())
    return [f"FLOP ceiling (sgemm {ceilings['gemm_n']}^3, GFLOP/s): {gemm}; "
            f"best {ceilings['gflops']:.0f} ({ceilings['gemm_best']})",
            f"bandwidth ceiling: per row, a copy moving the same bytes (read + written), "
            f"in this run; for scale, a {ceilings['dram_bytes'] // 2**20} MiB copy: "
            f"{ceilings['dram_gbps']:.1f} GB/s",
            f"{ceilings['threads']} threads"]


def table(rows, ceilings):
    """Rows as made by make_row; ceilings as written by `dlkern bench`."""
    lines = header(ceilings) + [""]
    head = (f"{'kernel':<24} {'shape':<42} {'dlkern':>9} {'reference':>10} {'torch':>9} "
            f"{'dlkern rate':>15} {'ceiling':>7} {'%ceil':>6} {'%copy':>6} {'x ref':>6} {'x torch':>7} "
            f"target")
    lines += [head, "-" * (len(head) + 14)]
    for r in rows:
        t = r["times"]
        rate = f"{r['rate']:.1f} {r['unit']}" if r.get("rate") is not None else "-"
        lines.append(f"{r['kernel']:<24} {r['shape'][:42]:<42} {_fmt_time(t.get('dlkern')):>9} "
                     f"{_fmt_time(t.get('reference')):>10} {_fmt_time(t.get('torch')):>9} "
                     f"{rate:>15} {_fmt(r.get('ceiling'), '.0f'):>7} "
                     f"{_fmt(r.get('pct'), '.0f', '%'):>6} "
                     f"{_fmt(r.get('pct_large_copy'), '.0f', '%'):>6} {_fmt(r.get('vs_ref'), '.1f'):>6} "
                     f"{_fmt(r.get('vs_torch'), '.2f'):>7} {r.get('target', '-')}")
    lines += ["",
              "x ref / x torch: how many times faster dlkern is (above 1 = dlkern wins). "
              "ceiling: the row's own ceiling in its unit;",
              "%ceil: dlkern's rate as a percentage of it; %copy (GB/s rows): of the large "
              "memory copy in the header, the bandwidth ceiling issue 5 names. Times are medians over every timed "
              "call; implementations alternate in blocks.",
              "target (issue 5): GEMM-bound conv2d torch>=1, ceil>=70%; small-channel and "
              "depthwise conv2d torch>=2; pooling, batch norm,",
              "softmax, cross-entropy torch>=2, %copy>=50%; causal conv1d fwd+bwd torch>=1.5; "
              "memory-bound ref>=5, GEMM-bound ref>=2; train step torch>=1."]
    noisy = [r["kernel"] + " " + r["shape"] for r in rows
             if (r.get("other_load") or 0) > 0.2]
    if noisy:
        lines.append("measured while other processes used > 0.2 cores (less reliable): "
                     + "; ".join(noisy))
    missed = [r for r in rows if r.get("target", "").startswith("missed")]
    with_target = [r for r in rows if r.get("target") not in (None, "-")]
    lines.append(f"targets: {len(with_target) - len(missed)} of {len(with_target)} rows met.")
    return "\n".join(lines)


def write_json(path, rows, ceilings, meta):
    with open(path, "w") as f:
        json.dump({"meta": meta, "ceilings": ceilings, "rows": rows}, f, indent=1)


def chart(path, rows):
    """Horizontal bars of dlkern's speedup over the reference and over PyTorch (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = [f"{r['kernel']} {r['shape'][:30]}" for r in rows]
    fig, ax = plt.subplots(figsize=(11, max(4, 0.28 * len(rows) + 1.5)))
    ys = range(len(rows))
    ref = [r.get("vs_ref") or 0 for r in rows]
    tor = [r.get("vs_torch") or 0 for r in rows]
    ax.barh([y + 0.2 for y in ys], ref, height=0.4, label="vs NumPy reference")
    ax.barh([y - 0.2 for y in ys], tor, height=0.4, label="vs PyTorch")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), rows):  # rows missing an issue-5 target in red
        if r.get("target", "").startswith("missed"):
            tick.set_color("tab:red")
    ax.invert_yaxis()
    ax.set_xlabel("speedup of dlkern (x, log scale; > 1 means dlkern is faster); "
                  "red labels: a target of issue 5 missed")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
