"""What the sub-commands share: one-line errors, option parsing helpers."""

import argparse
import sys


class CommandError(Exception):
    """A problem the user can fix; the command prints its message and exits 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message):
        """Print the usage error on one line and exit with status 2 (no usage dump)."""
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def positive_ints(text):
    """'256,256' -> (256, 256); argparse type."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _number(convert, ok, kind, wanted):
    """An argparse type: convert(text) (a `kind`), accepted when ok(value), else an
    error saying `wanted`."""

    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {v}")
        return v

    return parse


fraction = _number(float, lambda v: 0.0 <= v < 1.0, "a number", "a value in [0, 1)")
open_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a number", "a value in (0, 1)")
positive_int = _number(int, lambda v: v > 0, "an integer", "a positive integer")
non_negative_float = _number(float, lambda v: v >= 0, "a number", "a number >= 0")
