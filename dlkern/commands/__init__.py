"""Implementations of the `dlkern` command-line subcommands."""
