"""What every diagnostic returns: a small result object whose repr is a short table
and a verdict, and the Issue record used by the checks that list problems."""

import math


def fmt(value, digits=3):
    """A number for a table cell: compact, with exponents for very large/small values."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits + 1}g}"
    return f"{v:.{digits - 1}e}"


def table(headers, rows, indent="  "):
    """Rows of cells as aligned text columns (numbers right-aligned)."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for j, c in enumerate(row):
            widths[j] = max(widths[j], len(c))
    numeric = [
        all(not isinstance(r[j], str) for r in rows) if rows else False for j in range(len(headers))
    ]

    def line(row):
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(headers), indent + "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


class Issue:
    """One finding of a check: a stable `code` (e.g. 'nonfinite'), a `severity`
    ('error' makes the check fail; 'warning' and 'info' do not), a one-line `message`
    saying what was found, and `advice` saying what to do about it. `where` holds the
    affected features, rows or layers when there are any."""

    __slots__ = ("code", "severity", "message", "advice", "where")

    SEVERITIES = ("error", "warning", "info")

    def __init__(self, code, severity, message, advice="", where=None):
        if severity not in self.SEVERITIES:
            raise ValueError(f"Issue severity must be one of {self.SEVERITIES}, got {severity!r}")
        self.code, self.severity, self.message = code, severity, message
        self.advice, self.where = advice, where

    def __repr__(self):
        return f"Issue({self.code!r}, {self.severity!r}, {self.message!r})"

    def format(self):
        """'[SEVERITY] code: message', with the advice on a second line."""
        text = f"[{self.severity.upper()}] {self.code}: {self.message}"
        if self.advice:
            text += f"\n      -> {self.advice}"
        return text


class Result:
    """Base of the diagnostics' results: subclasses implement `_lines()` (the text of
    repr/str) and set `passed` or `kind` when they judge."""

    title = "diagnostic"

    def _lines(self):
        return []

    def __repr__(self):
        return "\n".join([f"<{self.title}>"] + list(self._lines()))

    __str__ = __repr__

    def _repr_pretty_(self, p, cycle):  # IPython shows the table, not a one-liner
        p.text(repr(self))


def verdict(passed):
    """'PASS' or 'FAIL'."""
    return "PASS" if passed else "FAIL"


def issue_lines(issues, empty="no issues found"):
    """The issues as indented report lines, most severe first (empty: one line saying so)."""
    if not issues:
        return [f"  {empty}"]
    order = {s: i for i, s in enumerate(Issue.SEVERITIES)}
    return [
        "  " + i.format().replace("\n", "\n  ")
        for i in sorted(issues, key=lambda i: order[i.severity])
    ]
