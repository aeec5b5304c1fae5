"""Command line: `dlkern <command>` / `python -m dlkern <command>`."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dlkern", description=__doc__)
    parser.add_argument("command", nargs="?", help="command to run")
    args = parser.parse_args(argv)
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":
    sys.exit(main())
