"""The `fastnn` command (also `python -m fastnn`).

Each sub-command is one `_add_<name>(subparsers)` function that declares its options
and one `_cmd_<name>(args)` function that runs it and returns the exit code; `main`
only dispatches. Optional heavy dependencies (PyTorch for `bench`) are imported only
when a command runs, so that `fastnn --help` and one sub-command never pay for another's."""

import os
import sys

from . import __version__
from .commands.common import CommandError, Parser


def _defaults_formatter():
    import argparse

    class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
        """Shows each option's default, except None (the help says what happens)."""

        def _get_help_string(self, action):
            if action.default is None:
                return action.help
            return super()._get_help_string(action)

    return DefaultsFormatter


def _add(subparsers, name, module, help, description):
    """Register a sub-command implemented by fastnn.commands.<module> (add_arguments,
    run); its --help shows defaults and its errors are one line (exit status 2)."""
    p = subparsers.add_parser(
        name, help=help, description=description, formatter_class=_defaults_formatter()
    )
    module.add_arguments(p)
    p.set_defaults(func=module.run, command=name)
    return p


def _add_train(subparsers):
    from .commands import train

    _add(
        subparsers,
        "train",
        train,
        "train an MLP (default: on the embedded digits)",
        train.__doc__.split("\n\n")[0].replace("\n", " "),
    )


def _add_predict(subparsers):
    from .commands import predict

    _add(
        subparsers,
        "predict",
        predict,
        "predict with a saved model, writing CSV",
        predict.__doc__.replace("\n", " "),
    )


def _add_bench(subparsers):
    from .bench import compare  # light: imports torch only when the benchmark runs

    p = subparsers.add_parser(
        "bench",
        help="benchmark fastnn against NumPy (and PyTorch, when installed)",
        description="Measure the MLP-BN training step and inference of fastnn side by side "
        "with a pure-NumPy baseline and PyTorch (when importable), in one "
        "process, interleaved; print the tables and targets of docs/performance.md "
        "and write the measurements as JSON.",
    )
    compare.add_arguments(p)
    p.add_argument(
        "--distributed",
        action="store_true",
        help="instead: data-parallel training over MPI on this machine (1 process "
        "x 2 threads against 2 processes x 1 thread) and the all-reduce cost "
        'against the gradient size; needs pip install "fastnn[mpi]"',
    )
    p.add_argument(
        "--inference",
        action="store_true",
        help="only the inference section: batch-1 latency and throughput of "
        "predict against PyTorch and onnxruntime, each in its own process",
    )
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args):
    if args.rnn:
        from .bench import rnn

        return rnn.run_from_args(args)
    if args.distributed:
        from .bench import distributed

        quick = args.quick
        distributed.run(
            batch=args.batches[0] if args.batches else 2048,
            repeats=args.repeats or (2 if quick else 5),
            min_time=args.min_time or (0.05 if quick else 0.2),
        )
        return 0
    if args.contention:
        from .bench import contention

        return contention.run_command(args)
    if args.inference:
        from .bench import inference

        return inference.run(args)
    from .bench import compare

    return compare.run(args, sys.stdout)  # the stdout of now (a test may have swapped it)


def _add_doctor(subparsers):
    from .diagnostics import doctor

    _add(subparsers, "doctor", doctor, doctor.HELP, doctor.DESCRIPTION)


# Sub-commands in the order `fastnn --help` lists them.
_SUBCOMMANDS = (_add_train, _add_predict, _add_doctor, _add_bench)


def build_parser():
    """The argparse parser of the fastnn command and its subcommands."""
    parser = Parser(prog="fastnn", description="Fast neural-network training on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
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
    try:
        return args.func(args)
    except CommandError as e:
        sys.stderr.write(f"fastnn {getattr(args, 'command', '')}: error: {e}\n")
        return 2
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
