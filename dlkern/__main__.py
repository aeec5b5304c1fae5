"""dlkern's command line.

  dlkern train [--task digits|adding] [options]   train a model with the C kernels
  dlkern bench [--quick] [--filter TEXT]          compare dlkern, NumPy and PyTorch
  dlkern <command> --help                         the options of a command
"""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dlkern", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="command")
    from dlkern.commands import bench, train

    train_parser = commands.add_parser(
        "train", help="train a model on real data (default: a CNN on the 8x8 digits)",
        description=train.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_arguments(train_parser)
    bench_parser = commands.add_parser(
        "bench", help="benchmark every kernel against the NumPy reference and PyTorch",
        description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(bench_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "train":
        from dlkern.training import NonFiniteError

        try:
            train.run(args)
        except NonFiniteError as exc:  # diverged: say where, keep the last checkpoint
            print(f"dlkern train: {exc}", file=sys.stderr)
            return 1
    elif args.command == "bench":
        bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
