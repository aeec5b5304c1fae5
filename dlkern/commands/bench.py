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
    from dlkern.benchmarks.report import chart, table, write_json
    from dlkern.benchmarks.timing import measure

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
    budget = 0.25 if args.quick else 0.8
    print(f"dlkern bench: {threads} threads, {'quick' if args.quick else 'full'} budget "
          f"({budget}s per case)", flush=True)
    ceilings = {"gflops": ceil.gemm_gflops(budget=budget), "gbps": ceil.copy_gbps(budget=budget),
                "threads": threads}
    print(f"ceilings: sgemm {ceilings['gflops']:.1f} GFLOP/s, copy {ceilings['gbps']:.1f} GB/s",
          flush=True)

    cases = all_cases(torch)
    if args.filter:
        cases = [c for c in cases if args.filter in c.name]
    rows = []
    t_start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        case.check()  # never time a wrong answer
        times = measure(case.impls, budget=budget)
        t = times["dlkern"]
        rate = case.work / t / 1e9
        limit = ceilings["gflops"] if case.unit == "GFLOP/s" else ceilings["gbps"]
        row = {"family": case.family, "kernel": case.kernel, "shape": case.shape,
               "unit": case.unit, "times": times, "rate": rate, "pct": 100 * rate / limit,
               "vs_ref": times["reference"] / t if "reference" in times else None,
               "vs_torch": times["torch"] / t if "torch" in times else None}
        rows.append(row)
        print(f"[{i}/{len(cases)}] {case.name}: dlkern {t * 1e3:.3f} ms, "
              f"{rate:.1f} {case.unit}", file=sys.stderr, flush=True)
    for name, steps in model_steps(torch):
        if args.filter and args.filter not in name:
            continue
        times = measure(steps, budget=2 * budget)
        rows.append({"family": "train step", "kernel": name.split(":")[0],
                     "shape": name.split(": ")[1], "unit": None, "times": times, "rate": None,
                     "pct": None, "vs_ref": None,
                     "vs_torch": times["torch"] / times["dlkern"] if "torch" in times else None})
    print()
    print(table(rows, ceilings))
    os.makedirs(args.out, exist_ok=True)
    meta = {"threads": threads, "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "torch": getattr(torch, "__version__", None), "dlkern": dlkern.__version__,
            "seconds": time.perf_counter() - t_start, "quick": args.quick}
    json_path = os.path.join(args.out, "bench.json")
    write_json(json_path, rows, ceilings, meta)
    png = chart(os.path.join(args.out, "speedups.png"), rows)
    print(f"\nwrote {json_path}" + (f" and {png}" if png else ""))
    return rows
