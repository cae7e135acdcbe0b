"""Pictures for people: the only module that imports matplotlib (headless, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labeler.errors import ExportError, write_failed


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARK = b"tEXtSoftware\x00labeler"  # the PNG text chunk every chart labeler writes carries


def check_chart_path(path: Path, own: bool = False) -> None:
    """A chart's path, refused in one line before any work: a folder, not .png, or a file
    labeler did not write (a chart replaces only an earlier chart, as an export replaces
    only an earlier export; ``own``: a path of labeler's own, replaced whatever it holds)."""
    if not path.name or path.is_dir():
        raise ExportError(f"{str(path)!r}: a chart is written to a file: name one, e.g. rounds.png")
    if path.suffix.lower() != ".png":
        raise ExportError(f"{path}: a chart is a PNG picture: name it .png, e.g. rounds.png")
    if not path.parent.exists():  # a typo made a new folder tree
        raise ExportError(f"{path}: the folder {path.parent} does not exist; create it first")
    if not own and path.exists() and not (path.is_file() and _ours(path)):
        raise ExportError(
            f"{path}: exists and is not a chart labeler wrote; name a new file, or move it"
        )


def _ours(path: Path) -> bool:
    """Is ``path`` a chart labeler wrote (its text chunk, before the picture's data)?"""
    try:
        with path.open("rb") as fh:
            return MARK in fh.read(1 << 16)
    except OSError:
        return False


def _save(fig: Any, path: Path, own: bool = False) -> Path:
    """Write the PNG to a temporary name, then rename: never a half-written picture."""
    try:
        check_chart_path(path, own)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=120, bbox_inches="tight", metadata={"Software": "labeler"})
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(write_failed(path, exc, "write the chart")) from None
    finally:
        _plt().close(fig)
    return path


def reliability_png(
    bins: list[tuple[float, float, int]],
    ece: float | None,
    thresholds: tuple[float, float],
    path: Path,
    own: bool = False,
) -> Path:
    """Predicted score vs observed agreement with humans, one point per score bin
    (``own``: labeler's own copy in the state folder, replaced whatever it holds)."""
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
    return _save(fig, path, own)


def rounds_figure(
    rounds: list[dict[str, Any]], currency: str, target: float, extra_spent: float = 0.0
) -> Any:
    """The lead's two questions. Left: how much did we save? Cumulative cost of labeling
    the delivered pairs (certified judge labels + human decisions) by hand against what
    was spent (judge + humans), the gap shaded and the savings factor written; the judge's
    cost, tiny beside human labels, is written out, and so are the pairs still waiting.
    Right: is quality OK? Coverage of the delivered pairs, and audited agreement with its
    lower bound and n, against the target agreement."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    names = [str(r["round"]) for r in rounds]
    x = list(range(len(rounds)))
    baseline: list[float] = []
    spent: list[float] = []
    judge: list[float] = []
    for r in rounds:
        baseline.append((baseline[-1] if baseline else 0.0) + r["all_human_cost"])
        spent.append((spent[-1] if spent else 0.0) + r["judge_cost"] + r["human_cost"])
        judge.append((judge[-1] if judge else 0.0) + r["judge_cost"])
    left.plot(x, baseline, marker="o", color="grey", label="delivered pairs, all by hand")
    left.plot(x, spent, marker="o", color="tab:blue", label="labeler (judge + humans)")
    if spent:  # the reward model's money (labeler verify) is no round's: paid by now
        spent[-1] += extra_spent
    ahead = [b >= s for b, s in zip(baseline, spent, strict=True)]
    if any(ahead):
        left.fill_between(
            x, spent, baseline, where=ahead, interpolate=True, color="tab:green", alpha=0.15,
            label="saved",
        )  # fmt: skip
    if not all(ahead):  # a loss is not shaded as a saving
        behind = [not a for a in ahead]
        left.fill_between(
            x, spent, baseline, where=behind, interpolate=True, color="tab:red", alpha=0.15,
            label="cost more than by hand",
        )  # fmt: skip
    if rounds:
        saved = baseline[-1] - spent[-1]
        factor = baseline[-1] / spent[-1] if spent[-1] > 0 else None
        said = f"saved {saved:,.2f} {currency} on delivered pairs" + (
            f" ({factor:.1f}x cheaper)" if factor else ""
        )
        if saved < 0:
            said = f"{-saved:,.2f} {currency} more than all by hand on delivered pairs" + (
                f" ({factor:.2f}x: not cheaper)" if factor is not None else ""
            )
        # the words above the lines, in headroom kept for them (they overlapped the
        # lines and each other where the headline sat beside the last round)
        left.set_ylim(0, 1.9 * max(*baseline, *spent, 1e-9))  # (and the legend's)
        left.annotate(
            said,
            (0.02, 0.97),
            xycoords="axes fraction",
            fontsize=9,
            color="tab:green" if saved >= 0 else "tab:red",
            va="top",
        )
        left.annotate(
            f"judge: {judge[-1]:,.4f} {currency} in all",
            (0.02, 0.90),
            xycoords="axes fraction",
            fontsize=8,
            color="tab:blue",
            va="top",
        )
        waiting = sum(r.get("waiting", 0) for r in rounds)
        if waiting:
            left.annotate(
                f"waiting (not counted as saved): {waiting} pairs",
                (0.02, 0.84),
                xycoords="axes fraction",
                fontsize=8,
                color="grey",
                va="top",
            )
    left.set_xticks(x, names)
    left.set_xlabel("round")
    left.set_ylabel(f"cumulative cost ({currency})")
    left.set_title("How much did we save?")
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 0.79))
    # a round that delivered nothing has no coverage: a gap in the line, not 0%
    nan = float("nan")
    cov = [nan if r["coverage"] is None else 100 * r["coverage"] for r in rounds]
    right.plot(x, cov, marker="o", color="tab:blue", label="coverage (certified / delivered)")
    right.axhline(100 * target, color="tab:red", linestyle="--", label=f"target {target:.0%}")
    audited = [(i, r) for i, r in zip(x, rounds, strict=True) if r["audited_agreement"] is not None]
    if audited:
        xs = [i for i, _ in audited]
        ys = [100 * r["audited_agreement"] for _, r in audited]
        lows = [100 * (r["audited_agreement_lower"] or 0) for _, r in audited]
        right.errorbar(
            xs,
            ys,
            yerr=[[y - lo for y, lo in zip(ys, lows, strict=True)], [0] * len(ys)],
            marker="s",
            color="tab:orange",
            capsize=4,
            label="audited agreement (bar: lower bound)",
        )
        for i, (_, r) in zip(xs, audited, strict=True):
            right.annotate(
                f"n={r.get('audited', '?')}",
                (i, 100 * r["audited_agreement"]),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
                color="tab:orange",
            )
    right.set_xticks(x, names)
    if x:  # room on the right for the last round's "n=" note
        right.set_xlim(x[0] - 0.3, x[-1] + 0.5)
    right.set_ylim(0, 105)
    right.set_xlabel("round")
    right.set_ylabel("%")
    right.set_title("Is quality OK?")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def rounds_png(
    rounds: list[dict[str, Any]],
    currency: str,
    path: Path,
    target: float = 0.9,
    extra_spent: float = 0.0,
    own: bool = False,
) -> Path:
    """``rounds_figure`` as a PNG (``own``: see ``check_chart_path``)."""
    return _save(rounds_figure(rounds, currency, target, extra_spent), path, own)
