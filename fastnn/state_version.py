"""A process-wide count of changes to model state, for caches derived from it.

Every path through which fastnn changes a parameter or a running statistic calls
`bump()`: an optimizer step, assigning `Parameter.data`, `load_state_dict`, `astype`, a
training-mode batch-norm forward, the initialisers. A cache (a compiled predictor of
fastnn.inference) remembers `value` when it is built and rebuilds when it differs:
one integer comparison per call. Writing into a parameter's array in place
(`p.data[...] = v`) is not seen; call `bump()` after such edits."""

value = 0


def bump():
    """Record that some model state changed."""
    global value
    value += 1
