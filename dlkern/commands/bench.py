"""`dlkern bench`: every kernel family at the shapes of the kernel issues, float32,
forward and forward+backward, for dlkern, the NumPy reference and PyTorch (when
installed), beside the machine's FLOP and bandwidth ceilings measured in the same
run; then one training step of the `dlkern train` models against PyTorch.
Prints a table, writes bench.json and a PNG chart of the speedups.
"""
import os
import platform
import sys
import time


def add_arguments(parser):
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for dlkern and PyTorch (default: dlkern's default)")
    parser.add_argument("--filter", default=None,
                        help="only cases whose 'kernel shape' name contains this text")
    parser.add_argument("--quick", action="store_true",
                        help="a shorter time budget per case (noisier)")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--out", default="bench-results", help="directory for JSON and PNG")


def run(args):
    import dlkern
    from dlkern.benchmarks import ceilings as ceil
    from dlkern.benchmarks.cases import all_cases
    from dlkern.benchmarks.models import model_steps
    from dlkern.benchmarks.report import chart, header, make_row, table, write_json

    if args.threads is not None:
        dlkern.set_num_threads(args.threads)
    threads = dlkern.get_num_threads()
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            print("PyTorch is not installed: timing dlkern and the reference only")
    budget = 0.2 if args.quick else 0.6
    print(f"dlkern bench: {threads} threads, {'quick' if args.quick else 'full'} budget "
          f"({budget}s per case), ISA level {dlkern.isa()}", flush=True)
    t_start = time.perf_counter()
    gemm = ceil.gemm_gflops(torch=torch, budget=2 * budget)
    best = max(gemm, key=gemm.get)
    dram = DRAM_BYTES
    ceilings = {"threads": threads, "gemm_n": 2048, "gemm": gemm, "gemm_best": best,
                "gflops": gemm[best], "dram_bytes": dram,
                "dram_gbps": ceil.copy_gbps(dram, threads, budget=budget, torch=torch),
                "copy_gbps": {}}
    print("\n".join(header(ceilings)), file=sys.stderr, flush=True)  # progress; the table repeats it
    copies = ceil.CopyCeilings(threads, budget=budget / 2, torch=torch)

    cases = all_cases(torch)
    if args.filter:
        cases = [c for c in cases if args.filter in c.name]
    rows = []
    try:
        for i, case in enumerate(cases, 1):
            case.check()  # never time a wrong answer
            stats, load = measure_quietly(case.impls, budget)
            if case.unit == "GFLOP/s":
                limit, basis = ceilings["gflops"], f"best sgemm ({best})"
            else:
                limit = copies.for_passes(case.call_bytes)
                basis = "copy of the same bytes per call: " + " + ".join(
                    f"{n / 1e6:.2f} MB" for n in case.call_bytes)
            row = make_row(case.family, case.kernel, case.shape, _medians(stats), case.unit,
                           case.work, limit, _spreads(stats), basis,
                           large_copy_gbps=ceilings["dram_gbps"])
            row["other_load"] = load
            rows.append(row)
            print(f"[{i}/{len(cases)}] {case.name}: dlkern {row['times']['dlkern'] * 1e3:.3f} ms, "
                  f"{row['rate']:.1f} {case.unit}, {row['pct']:.0f}% of {limit:.0f}",
                  file=sys.stderr, flush=True)
    finally:
        copies.close()
    ceilings["copy_gbps"] = {str(n): g for n, g in sorted(copies.by_size.items())}
    for name, steps in model_steps(torch):
        if args.filter and args.filter not in name:
            continue
        stats, load = measure_quietly(steps, 2 * budget)
        kernel, shape = name.split(": ", 1)
        rows.append(make_row("train step", kernel, shape, _medians(stats),
                             spread=_spreads(stats)))
        rows[-1]["other_load"] = load
    print()
    print(table(rows, ceilings))
    os.makedirs(args.out, exist_ok=True)
    meta = {"threads": threads, "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "torch": getattr(torch, "__version__", None), "dlkern": dlkern.__version__,
            "isa": dlkern.isa(),
            "seconds": time.perf_counter() - t_start, "quick": args.quick, "budget": budget,
            "method": "medians over every timed call; per round, each implementation in "
                      "a rotating order: wait until other threads are idle, one warm-up "
                      "call, then a block of timed calls"}
    json_path = os.path.join(args.out, "bench.json")
    write_json(json_path, rows, ceilings, meta)
    png = chart(os.path.join(args.out, "speedups.png"), rows)
    print(f"\nwrote {json_path}" + (f" and {png}" if png else "") +
          f" in {meta['seconds']:.0f} s")
    return rows


#: The copy printed for scale in the header: far larger than the 32 MiB L3.
DRAM_BYTES = 256 * 2**20

#: Cores that other processes may use during a case before it is measured again: on
#: 2 cores any outside load stalls a 2-thread parallel region by scheduler ticks (4 ms).
NOISY_CORES = 0.2
ATTEMPTS = 3


def measure_quietly(impls, budget, attempts=ATTEMPTS, noisy=NOISY_CORES):
    """(summarized timings, cores used by other processes meanwhile): measured again,
    up to `attempts` times, while other processes used more than `noisy` cores; the
    quietest attempt is kept."""
    from dlkern.benchmarks.timing import OtherLoad, measure_samples, summarize

    best = None
    for _ in range(attempts):
        with OtherLoad() as load:
            stats = summarize(measure_samples(impls, budget=budget))
        if best is None or (load.cores or 0.0) < (best[1] or 0.0):
            best = (stats, load.cores)
        if load.cores is None or load.cores <= noisy:
            break
        print(f"  other processes used {load.cores:.2f} cores: measuring again",
              file=sys.stderr, flush=True)
    return best


def _medians(stats):
    return {name: s["median"] for name, s in stats.items()}


def _spreads(stats):
    """Interquartile range over median, per implementation: how much to trust a ratio."""
    return {name: s["iqr"] / s["median"] for name, s in stats.items() if s["median"] > 0}
