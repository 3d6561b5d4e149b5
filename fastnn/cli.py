"""The `fastnn` command (also `python -m fastnn`).

Each sub-command is one `_add_<name>(subparsers)` function that declares its options
and one `_cmd_<name>(args)` function that runs it and returns the exit code; `main`
only dispatches. Optional heavy dependencies (PyTorch for `bench`) are imported only
when a command runs, so that `fastnn --help` and one sub-command never pay for another's."""
import argparse
import sys

from . import __version__


def _add_bench(subparsers):
    from .bench import compare  # light: imports torch only when the benchmark runs

    p = subparsers.add_parser(
        "bench", help="benchmark fastnn against NumPy (and PyTorch, when installed)",
        description="Measure the MLP-BN training step and inference of fastnn side by side "
                    "with a pure-NumPy baseline and PyTorch (when importable), in one "
                    "process, interleaved; print the tables and targets of PERFORMANCE.md "
                    "and write the measurements as JSON.")
    compare.add_arguments(p)
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args):
    from .bench import compare

    return compare.run(args)


# Sub-commands in the order `fastnn --help` lists them.
_SUBCOMMANDS = (_add_bench,)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnn", description="Fast neural-network training on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `fastnn` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)
