"""``labeler export``: the finished dataset with its provenance and its card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeler import export, prompts
from labeler.config import Config
from labeler.errors import ExportError, StateError
from labeler.lock import project_lock
from labeler.report import build_report
from labeler.store import Store
from labeler.terms import certified_kind, certified_phases, claimed_terms

CARD = """---
license: other
task_categories:
- text-generation
tags:
- preference
- {fmt}
- labeler
---
# {name}

Preference data made with labeler (an LLM judge decides the pairs it
is confident about; human reviewers in Argilla decide the rest).

| | |
| --- | --- |
| format | {fmt_upper} ({columns}) |
| rows | {rows} |
| selection | {selection} |
| pairs labelled by the judge / by humans | {by_judge} / {by_human} |
| judge labels certified / provisional (in this file) | {certified} / {provisional} |
| provisional judge labels left out | {left_out} |
| guarantee | {guarantee} |
| judge model(s) | {models} |
| judge prompt template hash | {template} |
| guidelines hash | {guidelines} |
| rounds | {rounds} |
| audited agreement of judge labels with humans | {agreement} |
| judge cost / human cost | {judge_cost} / {human_cost} {currency} |
| pairs delivered (certified judge + human-decided) | {delivered} |
| all-human cost of the delivered pairs / savings | {baseline} {currency} / {savings} |
| still waiting (not counted as saved) | {waiting} |

A *certified* judge label is covered by a threshold that human verdicts certified; a
*provisional* one passed only the routing threshold and waits for evidence (exported only
with `--include-provisional`). Every row carries its `pair_id`, `label_source` (judge or
human), `label_status` (human, certified, provisional), `confidence`, `round`,
`judge_model` and `template_hash` when exported with provenance. Pairs judged a tie or
both bad by humans are not included. Savings count delivered pairs only (certified judge
labels and human decisions, ties and both-bad among them): the all-human cost of those
pairs over what was spent on the judge and on humans.
"""


def _card(
    cfg: Config,
    fmt: str,
    rows: int,
    columns: list[str],
    dpo: list[dict[str, Any]],
    status: dict[str, int],
    report: dict[str, Any],
    left_out: int,
    claimed: tuple[float, float] | None,
    selection: str = "every row",
    phases: int = 1,
    kind: str | None = None,
) -> str:
    total = report["total"] or {}
    audited = [
        (r["audited_agreement"], r["round"])
        for r in report["rounds"]
        if r["audited_agreement"] is not None
    ]
    agreement = ", ".join(f"round {rid}: {a:.0%}" for a, rid in audited) or "not audited yet"
    factor = total.get("savings_factor")
    return CARD.format(
        name=cfg.project.name,
        fmt=fmt,
        fmt_upper=fmt.upper(),
        columns=", ".join(columns),
        rows=rows,
        selection=selection,
        by_judge=sum(r["label_source"] == "judge" for r in dpo),
        by_human=sum(r["label_source"] == "human" for r in dpo),
        certified=sum(r["label_status"] == "certified" for r in dpo),
        provisional=sum(r["label_status"] == "provisional" for r in dpo),
        left_out=left_out,
        guarantee=_guarantee_text(cfg, claimed, phases, kind),
        models=", ".join(sorted({r["judge_model"] for r in dpo})) or "-",
        template=", ".join(sorted({r["template_hash"] for r in dpo})) or "-",
        guidelines=prompts.load_guidelines(cfg.judge.guidelines).hash,
        rounds=len(report["rounds"]),
        agreement=agreement,
        judge_cost=f"{total.get('judge_cost', 0):.4f}",
        human_cost=f"{total.get('human_cost', 0):.2f}",
        delivered=f"{total.get('delivered', 0)} ({total.get('certified', 0)} + "
        f"{total.get('human_decided', 0)})",
        baseline=f"{total.get('all_human_cost', 0):.2f}",
        savings="-" if factor is None else f"{factor:.2f}x",
        waiting=f"{total.get('waiting', 0)} pairs, up to {total.get('waiting_labels', 0)} "
        "more human labels",
        currency=report["currency"],
    )


def _guarantee_text(
    cfg: Config, claimed: tuple[float, float] | None, phases: int = 1, kind: str | None = None
) -> str:
    """The claim, in the terms and the kind of guarantee the certificates in force were
    tested at (``claimed``: ``terms.claimed_terms``; ``kind``: ``terms.certified_kind``),
    not in whatever the config says now; with the certified labels of several judge
    versions (``phases``), for each on its own."""
    c = cfg.calibration
    guarantee = kind or c.guarantee
    other = (  # (a later judge's phase took another kind)
        f" (the guarantee its certificates were tested under; the config now asks "
        f"{c.guarantee!r}, which no certificate here was tested under)"
        if guarantee != c.guarantee
        else ""
    )
    target, confidence = claimed or (c.target_agreement, c.confidence)
    changed = (target, confidence) != (c.target_agreement, c.confidence)
    note = (
        f" (the terms the certificate was tested at; the config now asks >= "
        f"{c.target_agreement:.0%} with probability >= {c.confidence:.0%}, which needs a new "
        "certificate)"
        if changed
        else ""
    )
    each = (
        f"; the labels each judge certified hold it on their own ({phases} judges or judge "
        "versions certified labels here, each in its own calibration phase)"
        if phases > 1
        else ""
    )
    if guarantee == "expected":
        return f"expected agreement of certified judge labels >= {target:.0%}{note}{each}{other}"
    return (
        f"certified judge labels agree with humans >= {target:.0%} "
        f"with probability >= {confidence:.0%}{note}{each}{other}"
    )


@dataclass(frozen=True)
class ExportOptions:
    """Which rows, in which shape: ``label_source`` any | human | judge; rows whose
    confidence (the judge's, or the reviewers' vote share) is below ``min_confidence`` are
    left out; ``test_size`` splits off a fixed, pair-id-hashed test share; the
    conversational format writes prompt / chosen / rejected as message lists (TRL)."""

    label_source: str = "any"
    min_confidence: float = 0.0
    test_size: float = 0.0
    conversational: bool = False


def _selection(opts: ExportOptions, certified_only: bool, provenance: bool) -> str:
    """The export's options that shape its rows, for the card (a filtered or reshaped
    file says so)."""
    said = ["certified judge labels and human labels" if certified_only else "provisional too"]
    said += _filters(opts)
    said += [f"--test-size {opts.test_size:g}"] if opts.test_size else []
    said += ["--conversational (messages)"] if opts.conversational else []
    said += [] if provenance else ["--no-provenance"]
    return "; ".join(said)


def _filters(opts: ExportOptions) -> list[str]:
    """The options that leave rows out, as typed."""
    said = [f"--label-source {opts.label_source}"] if opts.label_source != "any" else []
    return said + ([f"--min-confidence {opts.min_confidence:g}"] if opts.min_confidence else [])


def _nothing_to_export(
    out: Path, status: dict[str, int], certified_only: bool, opts: ExportOptions, dropped: int
) -> str:
    """Why an export has no row, in one line (nothing is written)."""
    filters = [f"{dropped} rows dropped by labeler verify"] if dropped else []
    filters += _filters(opts)
    if certified_only and status.get("provisional"):
        filters.append("provisional judge labels left out (--include-provisional adds them)")
    has = ", ".join(f"{status.get(k, 0)} {k}" for k in ("human", "certified", "provisional"))
    why = f"; {', '.join(filters)} left none" if filters else ""
    return f"{out}: no row to export (the project's labels: {has}{why}); nothing written"


def split_path(out: Path, split: str) -> Path:
    """prefs.parquet -> prefs.train.parquet; a folder -> folder/train."""
    if out.suffix:
        return out.with_name(f"{out.stem}.{split}{out.suffix}")
    return out / split


EXPORT_TARGETS = "export_targets"  # meta key: every path this project exported to
MAX_TARGETS = 200


def _remember_target(store: Store, out: Path, test_size: float) -> list[Path]:
    """Add this export's path(s) to the project's list and return the whole list: the
    folders where a killed export may have left its temporary files."""
    try:
        known = [str(p) for p in json.loads(store.get_meta(EXPORT_TARGETS) or "[]")]
    except ValueError:
        known = []
    new = [out] if not test_size else [split_path(out, "train"), split_path(out, "test")]
    for path in new:
        text = str(path.absolute())
        if text in known:
            known.remove(text)
        known.append(text)
    known = known[-MAX_TARGETS:]
    store.set_meta(EXPORT_TARGETS, json.dumps(known))
    return [Path(p) for p in known]


# what an export knows of each row before it writes any (``run_export``'s first pass)
META = ("pair_id", "label_source", "label_status", "confidence", "judge_model", "template_hash",
        "rm_margin")  # fmt: skip


def run_export(
    cfg: Config,
    fmt: str,
    target: str,
    out: Path,
    provenance: bool,
    repo: str | None = None,
    certified_only: bool = True,
    options: ExportOptions | None = None,
) -> dict[str, Any]:
    """Write the dataset as ``fmt`` (dpo | kto) to ``out`` (``target``: disk | parquet |
    jsonl), with its card, and push it to ``repo``. Two passes over the state: what each
    row is (its provenance: the selection, the splits, the card's counts), then its texts,
    streamed into the files a batch at a time in pair-id order: 100,000 rows of long
    answers are never all in memory."""
    opts = options or ExportOptions()
    if not cfg.db_path.exists():
        raise StateError(f"{cfg.db_path}: no state yet; run `labeler round` first")
    export.refuse_other_format(out, target)
    export.refuse_missing_folder(out)
    if repo:
        export.hub_token()  # no token: said before anything is written
    with project_lock(cfg.project.state_dir, "export"), Store(cfg.db_path) as store:

        def wanted(row: dict[str, Any]) -> bool:
            return (
                opts.label_source in ("any", row["label_source"])
                and row["confidence"] >= opts.min_confidence
            )

        dpo = [
            {k: row[k] for k in META}
            for r in store.dataset_rows(certified_only, texts=False, by_id=True)
            if wanted(row := export.dpo_row(dict(r)))
        ]
        status = store.label_status_counts()
        dropped = sum(v["dropped"] for v in store.verify_counts().values())
        targets = _remember_target(store, out, opts.test_size)
        # what the certificates in force were tested at (the card states it)
        claimed = claimed_terms(store, range(len(cfg.judges)))
        phases = certified_phases(store, range(len(cfg.judges)))
        kind = certified_kind(store, range(len(cfg.judges)))
        for target_path in {*targets, out}:  # a killed export's leftovers: swept now
            export.sweep(target_path.parent, export.export_temp_prefixes(target_path))
        if not dpo:  # a file with no row is no dataset (datasets cannot load an empty JSONL)
            raise ExportError(_nothing_to_export(out, status, certified_only, opts, dropped))
        per_pair = 2 if fmt == "kto" else 1  # KTO: the chosen and the rejected response

        def rows(part: str | None = None) -> Iterator[dict[str, Any]]:
            """The rows to write (of split ``part``), in pair-id order, texts and all."""
            for r in store.dataset_rows(certified_only, by_id=True):
                row = export.dpo_row(dict(r))
                if not wanted(row) or part not in (None, _split_of(row["pair_id"], opts)):
                    continue
                made = export.kto_rows([row]) if fmt == "kto" else [row]
                yield from export.conversational(made) if opts.conversational else made

        base = ["prompt", "completion", "label"] if fmt == "kto" else list(export.DPO_COLUMNS)
        columns = base + (
            [*export.PROVENANCE_COLUMNS, *export.verify_columns(dpo)] if provenance else []
        )
        report = build_report(cfg)

        # provisional labels the whole export leaves out (a split's are in the other one)
        left_out = status["provisional"] - sum(r["label_status"] == "provisional" for r in dpo)

        chosen = _selection(opts, certified_only, provenance)

        def card(pairs: list[dict[str, Any]]) -> str:
            rows_in = per_pair * len(pairs)
            return _card(
                cfg, fmt, rows_in, base, pairs, status, report, left_out, claimed, chosen,
                phases, kind,
            )  # fmt: skip

        def write(part: str | None, path: Path, pairs: list[dict[str, Any]]) -> Path:
            return export.write_export(
                rows(part), columns, target, path, card(pairs), opts.conversational
            )

        splits: dict[str, dict[str, Any]] = {}
        if opts.test_size:
            for split in ("train", "test"):  # both refused before either is written
                export.refuse_overwrite(split_path(out, split).absolute(), target)
            pairs: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
            for r in dpo:
                pairs[_split_of(r["pair_id"], opts)].append(r)
            for split, part in pairs.items():
                if not part:
                    raise ExportError(
                        f"--test-size {opts.test_size:g}: the {split} split would have none of "
                        f"the {len(dpo)} pairs; choose a share that leaves both splits some"
                    )
            index = out / "dataset_dict.json" if target == "disk" and not out.suffix else None
            if index is not None:  # load_from_disk(out) reads the two splits as one
                export.refuse_index_overwrite(index)
            # each split's card describes the rows beside it
            written = {s: write(s, split_path(out, s), part) for s, part in pairs.items()}
            splits = {s: {"rows": per_pair * len(pairs[s]), "path": str(written[s])} for s in pairs}
            path = written["train"]
            if index is not None:
                export.write_index(index, list(pairs))
        else:
            path = write(None, out, dpo)
        card_path = (
            path / "README.md" if target == "disk" else path.with_name(path.name + ".README.md")
        )
        counts = {k: sum(r["label_status"] == k for r in dpo) for k in ("certified", "provisional")}
        counts["human"] = sum(r["label_source"] == "human" for r in dpo)
        result = {
            "rows": per_pair * len(dpo), "path": str(path), "card": str(card_path),
            "status": status,
            "written": counts,  # the pairs in the files (after --label-source, --min-confidence)
        }  # fmt: skip
        if splits:
            result["splits"] = splits
        pushed_card = card(dpo)
        # what to push, staged while the project is held; pushed once it is let go
        staged = export.stage(rows(), columns, out, opts.conversational) if repo else None
    if repo and staged is not None:
        try:
            result["hub"] = export.push_to_hub(staged, repo, pushed_card)
        except ExportError as exc:  # the local export stands: say so
            raise ExportError(f"{exc}; the local export {out} was written") from None
    return result


def _split_of(pair_id: str, opts: ExportOptions) -> str:
    """The split a pair is in under ``--test-size`` (fixed by its id)."""
    return "test" if export.in_test_split(pair_id, opts.test_size) else "train"
