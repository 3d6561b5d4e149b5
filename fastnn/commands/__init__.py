"""The sub-commands of the `fastnn` command line (see fastnn.cli)."""
