"""matplotlib access for the diagnostics' `.plot(path)` methods (optional dependency)."""

from ..plots import PlotsUnavailable, _pyplot


def pyplot(what):
    """matplotlib.pyplot (Agg backend), or PlotsUnavailable naming the plot asked for."""
    try:
        return _pyplot()
    except PlotsUnavailable:
        raise PlotsUnavailable(
            f"{what}.plot needs matplotlib, which is not installed: "
            "pip install matplotlib (or pip install 'fastnn[plot]')"
        ) from None


def save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
