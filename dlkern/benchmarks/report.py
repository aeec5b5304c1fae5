"""The bench report: a text table, the same rows as JSON, and a chart of speedups."""
import json


def _fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(rows, ceilings):
    """Rows: dicts with kernel, shape, times {impl: s}, rate, unit, pct, vs_ref, vs_torch."""
    lines = [f"machine ceilings in this run: sgemm {ceilings['gflops']:.1f} GFLOP/s, "
             f"copy {ceilings['gbps']:.1f} GB/s (read+write); "
             f"{ceilings['threads']} threads", ""]
    head = (f"{'kernel':<24} {'shape':<38} {'dlkern':>9} {'reference':>10} {'torch':>9} "
            f"{'dlkern rate':>16} {'%ceil':>6} {'x ref':>7} {'x torch':>8}")
    lines += [head, "-" * len(head)]
    for r in rows:
        t = r["times"]
        rate = f"{r['rate']:.1f} {r['unit']}" if r.get("rate") is not None else "-"
        pct = f"{r['pct']:.0f}%" if r.get("pct") is not None else "-"
        vs_ref = f"{r['vs_ref']:.1f}" if r.get("vs_ref") is not None else "-"
        vs_torch = f"{r['vs_torch']:.2f}" if r.get("vs_torch") is not None else "-"
        lines.append(f"{r['kernel']:<24} {r['shape'][:38]:<38} {_fmt_time(t.get('dlkern')):>9} "
                     f"{_fmt_time(t.get('reference')):>10} {_fmt_time(t.get('torch')):>9} "
                     f"{rate:>16} {pct:>6} {vs_ref:>7} {vs_torch:>8}")
    lines.append("")
    lines.append("x ref / x torch: how many times faster dlkern is (above 1 = dlkern wins). "
                 "Times are medians; implementations alternate within each round.")
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
    ax.invert_yaxis()
    ax.set_xlabel("speedup of dlkern (x, log scale; > 1 means dlkern is faster)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
