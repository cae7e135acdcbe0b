"""Pictures for people: the only module that imports matplotlib (headless, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labeler.errors import ExportError


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write the PNG to a temporary name, then rename: never a half-written picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the chart ({exc})") from None
    finally:
        _plt().close(fig)
    return path


def reliability_png(
    bins: list[tuple[float, float, int]],
    ece: float | None,
    thresholds: tuple[float, float],
    path: Path,
) -> Path:
    """Predicted score vs observed agreement with humans, one point per score bin."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if bins:
        xs, ys, _counts = zip(*bins, strict=True)
        ax.plot(xs, ys, marker="o", color="tab:blue", label="judge (audit sample)")
        for x, y, n in bins:
            ax.annotate(
                str(n),
                (x, y),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color="tab:blue",
            )
    for t, name in zip(thresholds, ("A", "B"), strict=True):
        if t <= 1:
            ax.axvline(
                t,
                color="tab:green" if name == "A" else "tab:orange",
                alpha=0.6,
                label=f"threshold {name} = {t:.3f}",
            )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("judge score")
    ax.set_ylabel("agreement with humans")
    title = "Reliability of the judge"
    if ece is not None:
        title += f" (ECE {ece:.3f})"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
