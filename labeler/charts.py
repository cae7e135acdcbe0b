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


def rounds_png(rounds: list[dict[str, Any]], currency: str, path: Path) -> Path:
    """Cost per round (judge, humans, all-human baseline) and coverage vs audited
    agreement per round: the slide for the lead."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [str(r["round"]) for r in rounds]
    x = list(range(len(rounds)))
    width = 0.27
    left.bar([i - width for i in x], [r["judge_cost"] for r in rounds], width, label="judge")
    left.bar(x, [r["human_cost"] for r in rounds], width, label="humans")
    left.bar(
        [i + width for i in x],
        [r["all_human_cost"] for r in rounds],
        width,
        label="all-human baseline",
        color="lightgrey",
    )
    left.set_xticks(x, names)
    left.set_xlabel("round")
    left.set_ylabel(f"cost ({currency})")
    left.set_title("Cost per round")
    left.legend(fontsize=8)
    cov = [100 * (r["coverage"] or 0) for r in rounds]
    agree = [
        None if r["audited_agreement"] is None else 100 * r["audited_agreement"] for r in rounds
    ]
    right.plot(x, cov, marker="o", label="coverage (accepted by the judge)")
    right.plot(
        [i for i, a in zip(x, agree, strict=True) if a is not None],
        [a for a in agree if a is not None],
        marker="s",
        label="audited agreement with humans",
    )
    right.set_xticks(x, names)
    right.set_ylim(0, 105)
    right.set_xlabel("round")
    right.set_ylabel("%")
    right.set_title("Coverage and audited agreement")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
