"""Writing the preference dataset: the only module that imports ``datasets`` for output.

The DPO dataset has ``prompt``, ``chosen``, ``rejected`` plus provenance columns. It is saved
with ``save_to_disk`` into a fresh version folder, then a symlink at ``dataset_dir`` is
swapped to point at it (``os.replace`` of a symlink is atomic), so a reader or a crash never
sees a half-written dataset. The optional Parquet file is written to a temporary name and
renamed into place the same way.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from labeler.errors import ExportError, redact, write_failed

DPO_COLUMNS = ("prompt", "chosen", "rejected")
PROVENANCE_COLUMNS = (
    "pair_id",
    "label_source",
    "label_status",
    "confidence",
    "round",
    "judge_model",
    "template_hash",
    "reviewers",
)
# what `labeler verify` found (present once it ran): the reward model's margin
# score(chosen) - score(rejected), and whether it fell below verify.min_margin
VERIFY_COLUMNS = ("rm_margin", "rm_flag")


def verify_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``VERIFY_COLUMNS`` when any row was checked by ``labeler verify``, else none."""
    return list(VERIFY_COLUMNS) if any(r.get("rm_margin") is not None for r in rows) else []


def dpo_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One DPO row from a stored pair and the label that decided it."""
    a_wins = row["label"] == "A"
    return {
        "prompt": row["prompt"],
        "chosen": row["response_a"] if a_wins else row["response_b"],
        "rejected": row["response_b"] if a_wins else row["response_a"],
        "pair_id": row["id"],
        "label_source": row.get("label_source", "judge"),
        "label_status": row.get("label_status") or row.get("label_source", "judge"),
        "confidence": float(row["confidence"]),
        "round": int(row["round_id"]),
        "judge_model": row["model"],
        "template_hash": row["template_hash"],
        "reviewers": int(row.get("reviewers", 0)),
        # a multi-turn prompt's messages (JSON), used by the conversational format
        "prompt_messages": row.get("prompt_messages") or None,
        "rm_margin": None if row.get("rm_margin") is None else float(row["rm_margin"]),
        "rm_flag": None if row.get("rm_flag") is None else bool(row["rm_flag"]),
    }


def warm_up() -> None:
    """Import ``datasets`` ahead of time (it takes about a second)."""
    import datasets

    datasets.disable_progress_bars()


def foreign_dataset_dir(dataset_dir: Path) -> bool:
    """Is there something at ``dataset_dir`` that ``save_dpo`` did not write (it keeps a
    symlink there), a folder of the user's that it must not replace?"""
    return dataset_dir.exists() and not dataset_dir.is_symlink()


def versions_dir(dataset_dir: Path) -> Path:
    """Where the versions of the dataset at ``dataset_dir`` are written (``save_dpo``)."""
    return dataset_dir.parent / f".{dataset_dir.name}.versions"


def save_dpo(rows: Iterable[Mapping[str, Any]], dataset_dir: Path, parquet: bool) -> int:
    """Write the DPO dataset atomically; returns the number of rows. ``rows`` are read a
    batch at a time (``BATCH_ROWS``) into an Arrow file the dataset is then saved from,
    so memory holds one batch, not the dataset (a project's whole dataset is rewritten
    after every round, sync and calibration)."""
    dataset_dir = dataset_dir.absolute()
    versions = versions_dir(dataset_dir)
    target = versions / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    building = target.with_name(target.name + ".building")  # (swept with old versions)
    sweep(dataset_dir.parent, (f".{dataset_dir.name}.parquet.tmp", f".{dataset_dir.name}.link-"))
    try:
        if foreign_dataset_dir(dataset_dir):
            raise ExportError(
                f"{dataset_dir}: exists and was not written by labeler; move it "
                "away or set output.dataset_dir to another path"
            )
        building.mkdir(parents=True)
        columns = [*DPO_COLUMNS, *PROVENANCE_COLUMNS]
        ds, count = _streamed(rows, columns, building / "rows.arrow", optional=VERIFY_COLUMNS)
        # one shard at least: datasets cannot load an empty dataset saved with zero shards
        ds.save_to_disk(str(target), num_shards=None if count else 1)
        if parquet:
            tmp = dataset_dir.with_name(f".{dataset_dir.name}.parquet.tmp")
            try:
                _write_parquet(ds, tmp)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, dataset_dir.with_name(dataset_dir.name + ".parquet"))
        del ds  # (its Arrow file is mapped until then)
        link_tmp = dataset_dir.with_name(f".{dataset_dir.name}.link-{uuid.uuid4().hex[:8]}")
        # relative: a moved or copied project reads its own dataset, not the original's
        os.symlink(os.path.relpath(target, dataset_dir.parent), link_tmp)
        os.replace(link_tmp, dataset_dir)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ExportError(write_failed(dataset_dir, exc, "write the dataset")) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    for old in versions.iterdir():
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return count


BATCH_ROWS = 1000  # rows a streamed write holds at a time (``_streamed``)


def _streamed(
    rows: Iterable[Mapping[str, Any]],
    columns: list[str],
    path: Path,
    messages: bool = False,
    optional: Sequence[str] = (),
) -> Any:
    """(the rows as a ``datasets.Dataset`` on an Arrow file written at ``path`` a batch
    at a time, their count); ``messages``: in TRL's conversational format. ``optional``
    columns are kept only when some row has a value in them (``VERIFY_COLUMNS``, once
    ``labeler verify`` ran)."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    datasets.disable_progress_bars()
    every = [*columns, *optional]
    count, used = 0, False
    with ArrowWriter(features=_features(every, messages), path=str(path)) as writer:
        it = iter(rows)
        while batch := list(itertools.islice(it, BATCH_ROWS)):
            count += len(batch)
            used = used or any(r.get(c) is not None for r in batch for c in optional)
            writer.write_batch({c: [r.get(c) for r in batch] for c in every})
        writer.finalize()
    mapped = datasets.Dataset.from_file(str(path))
    # its fingerprint (in a saved folder's state.json) from what it holds, not from the
    # temporary file's name: the same rows save to the same bytes
    ds = datasets.Dataset(mapped.data, info=mapped.info, fingerprint=_digest(path))
    return (ds if used or not optional else ds.remove_columns(list(optional))), count


def _digest(path: Path) -> str:
    """A short hash of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


def _write_parquet(ds: Any, path: Path) -> None:
    """Parquet through a Python file object: a full disk is then an OSError to report,
    where pyarrow writing to a path itself aborts the process (exit 134)."""
    import pyarrow.parquet as pq

    with path.open("wb") as fh:
        pq.write_table(ds.data.table, fh)


STALE_SECONDS = 24 * 3600  # a temp file this old is stale whoever wrote it


def temp_name(out: Path, kind: str) -> Path:
    """A temporary sibling of ``out`` named by its writer's pid (``.NAME.KIND-pPID-XXXX``):
    a later sweep removes it only once that process is gone (or the file is a day old)."""
    return out.with_name(f".{out.name}.{kind}-p{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _writer_alive(name: str, prefix: str) -> bool:
    """Is the process that named this temp file (``PREFIX pPID-...``) still running (and
    not this one)? Names without a pid (older labeler versions) have no living writer."""
    head = name[len(prefix) :].lstrip("-").split("-", 1)[0]
    if not (head.startswith("p") and head[1:].isdigit()) or int(head[1:]) == os.getpid():
        return False
    try:
        os.kill(int(head[1:]), 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, owned by someone else
        return True
    return True


def sweep(folder: Path, prefixes: tuple[str, ...]) -> None:
    """Remove temporary files or folders an earlier run left when it was killed (only
    labeler's own dot-names): those whose writing process is gone, or a day old."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    now = time.time()
    for entry in entries:
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        try:
            age = now - entry.lstat().st_mtime
        except OSError:
            continue
        if _writer_alive(entry.name, prefix) and age < STALE_SECONDS:
            continue  # another export is writing it right now
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def export_temp_prefixes(out: Path) -> tuple[str, ...]:
    """The names an export to ``out`` writes before its files are complete."""
    return (
        f".{out.name}.tmp-",
        f".{out.name}.old-",
        f".{out.name}.build-",
        f".{out.name}.README.md.tmp",
    )


def load_dataset(path: Path) -> Any:
    """A dataset labeler saved (``save_dpo``), as a ``datasets.Dataset``."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise ExportError(f"{path}: no dataset yet; run `labeler round` first") from None


MESSAGE_COLUMNS = ("prompt", "chosen", "rejected", "completion")


def conversational(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's conversational format: the prompt as a list of messages (a multi-turn
    prompt's own, else one user turn), each response as one assistant message."""
    out = []
    for row in rows:
        messages = row.get("prompt_messages")
        prompt = json.loads(messages) if messages else [{"role": "user", "content": row["prompt"]}]
        new = {**row, "prompt": prompt}
        for key in ("chosen", "rejected", "completion"):
            if key in row:
                new[key] = [{"role": "assistant", "content": row[key]}]
        out.append(new)
    return out


def in_test_split(pair_id: str, share: float) -> bool:
    """A fixed split by pair id: the same pair is always on the same side."""
    digest = hashlib.sha256(f"test:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def kto_rows(dpo: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO's unpaired form: the chosen response labelled True, the rejected one False."""
    out = []
    for row in dpo:
        extra = {k: v for k, v in row.items() if k not in DPO_COLUMNS}
        out.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True, **extra})
        out.append(
            {"prompt": row["prompt"], "completion": row["rejected"], "label": False, **extra}
        )
    return out


def _features(columns: list[str], messages: bool) -> Any:
    """The dataset's column types; ``messages``: TRL's conversational format (the prompt
    and responses as lists of messages)."""
    import datasets

    types = {
        "confidence": "float64",
        "round": "int64",
        "reviewers": "int64",
        "label": "bool",
        "rm_margin": "float64",
        "rm_flag": "bool",
    }
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}

    def feature(column: str) -> Any:
        if messages and column in MESSAGE_COLUMNS:
            return [message]  # conversational: a list of messages
        return datasets.Value(types.get(column, "string"))

    return datasets.Features({c: feature(c) for c in columns})


def write_export(
    rows: Iterable[Mapping[str, Any]],
    columns: list[str],
    target: str,
    out: Path,
    card: str,
    messages: bool = False,
) -> Path:
    """Write rows as a datasets folder, Parquet or JSONL, atomically and deterministically
    (the same rows give byte-identical files), with the dataset card beside them. The
    rows are read a batch at a time (``_streamed``), never held all at once; ``messages``:
    in TRL's conversational format."""
    out = out.absolute()
    refuse_overwrite(out, target)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(write_failed(out.parent, exc, "create the folder")) from None
    sweep(out.parent, export_temp_prefixes(out))
    tmp, building = temp_name(out, "tmp"), temp_name(out, "build")
    card_tmp: Path | None = None
    try:
        if target == "jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps({c: row[c] for c in columns}, ensure_ascii=False) + "\n")
        else:
            building.mkdir()
            ds, count = _streamed(rows, columns, building / "rows.arrow", messages)
            if target == "parquet":
                _write_parquet(ds, tmp)
            else:
                ds.save_to_disk(str(tmp), num_shards=1 if not count else None)
                (tmp / "README.md").write_text(card, "utf-8")
            del ds  # (its Arrow file is mapped until then)
        _replace(tmp, out)
        if target != "disk":
            card_path = out.with_name(out.name + ".README.md")
            card_tmp = temp_name(card_path, "tmp")
            card_tmp.write_text(card, "utf-8")
            os.replace(card_tmp, card_path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        if card_tmp is not None:
            card_tmp.unlink(missing_ok=True)
        raise ExportError(write_failed(out, exc, "write the export")) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out


DATASET_FILES = frozenset({"README.md", "dataset_info.json", "state.json"})
CARD_MARK = "Preference data made with labeler"  # in every card an export writes


def _our_card(path: Path) -> bool:
    """Is ``path`` a dataset card an export wrote (a regular file with ``CARD_MARK``)?"""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        with path.open(encoding="utf-8", errors="replace") as fh:
            return CARD_MARK in fh.read(8192)
    except OSError:
        return False


SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".arrow": "disk"}


def refuse_other_format(out: Path, target: str) -> None:
    """``--to parquet --out prefs.jsonl`` wrote Parquet bytes under a JSONL name."""
    named = SUFFIXES.get(out.suffix.lower())
    if named is not None and named != target:
        raise ExportError(
            f"{out}: a {out.suffix} name for --to {target}; name it for what is written "
            f"(or use --to {named})"
        )


def refuse_missing_folder(out: Path) -> None:
    """A typo in a path's folder made a new folder tree: the folder written into must
    exist (a file in its place is refused as the write fails)."""
    if not out.parent.exists():
        raise ExportError(
            f"{out}: the folder {out.parent} does not exist; create it first (or check --out)"
        )
    if not out.parent.is_dir():  # a user trial: "cannot create the folder (File exists)"
        raise ExportError(f"{out}: {out.parent} is a file, not a folder (check --out)")


def refuse_overwrite(out: Path, target: str) -> None:
    """An export replaces only an earlier export, known by the card it wrote: a datasets
    folder (``state.json``, ``data-*.arrow`` shards and its card ``README.md``, nothing
    else) for ``disk``, a file with its card ``NAME.README.md`` beside it for
    ``jsonl``/``parquet`` (or an empty folder, or nothing). Anything else at ``out`` or at
    its card's path — a project folder, a source, the state database, a symbolic link,
    another ``save_to_disk`` folder — is refused, never replaced."""
    hint = "choose another --out, or move it away first"
    card = out / "README.md" if target == "disk" else out.with_name(out.name + ".README.md")
    if out.is_symlink():
        raise ExportError(f"{out}: is a symbolic link, not an earlier export: {hint}")
    if target == "disk" and out.exists():
        try:
            names = {e.name for e in out.iterdir()} if out.is_dir() else None
        except OSError:
            names = None
        if names is None:
            raise ExportError(
                f"{out}: exists and is not a folder; a datasets export (--to disk) is a "
                f"folder: {hint}"
            )
        shards = {n for n in names if n.startswith("data-") and n.endswith(".arrow")}
        if names and ("state.json" not in names or names - shards - DATASET_FILES
                      or not _our_card(card)):  # fmt: skip
            raise ExportError(
                f"{out}: exists and is not an earlier export (a datasets folder with "
                f"labeler's card README.md, and nothing else): {hint}"
            )
    elif target != "disk":
        present = out.exists() or card.exists() or card.is_symlink()
        if present and (out.is_dir() or not _our_card(card)):  # what exists must be ours
            raise ExportError(
                f"{out}: exists, or its card {card.name} does, and is not an earlier "
                f"--to {target} export (one has labeler's card beside it): {hint}"
            )


def _replace(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``: files atomically; folders by moving the old one aside first."""
    if new.is_dir() and out.exists():
        old = temp_name(out, "old")
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    else:
        os.replace(new, out)


def stage(rows: Iterable[Mapping[str, Any]], columns: list[str], out: Path, messages: bool) -> Path:
    """The rows to push written beside ``out`` (a folder ``sweep`` removes once its writer
    is gone) a batch at a time, so the push can run after the project is let go."""
    folder = temp_name(out.absolute(), "build")
    try:
        folder.mkdir()
        _streamed(rows, columns, folder / "rows.arrow", messages)
    except BaseException as exc:  # (Ctrl-C, an Arrow error) no full-size copy is left
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ExportError(write_failed(out, exc, "stage the rows to push")) from None
        raise
    return folder


def push_to_hub(staged: Path, repo: str, card: str) -> str:
    """Push the rows ``stage`` wrote, and their card, to the Hugging Face Hub (token from
    HF_TOKEN); the staged folder is removed."""
    token = hub_token()
    from huggingface_hub import HfApi

    try:
        import datasets

        ds = datasets.Dataset.from_file(str(staged / "rows.arrow"))
        ds.push_to_hub(repo, token=token)
        del ds
        HfApi(token=token).upload_file(
            path_or_fileobj=card.encode(),
            path_in_repo="README.md",
            repo_id=repo,
            repo_type="dataset",
        )
    except Exception as exc:  # the hub client raises many types; all mean "not pushed"
        said = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, token)
        raise ExportError(f"push to {repo} failed: {said[:200]}") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return f"https://huggingface.co/datasets/{repo}"


def hub_token() -> str:
    """HF_TOKEN, or a one-line error (checked before anything is written)."""
    token = os.environ.get("HF_TOKEN", "")
    if not token:
        raise ExportError(
            "--push-to-hub needs a Hugging Face token in the HF_TOKEN environment variable"
        )
    return token


INDEX_MARK = "labeler export"  # in the dataset_dict.json a split export writes


def _index_text(splits: list[str]) -> str:
    return json.dumps({"splits": splits, "made_by": INDEX_MARK})


def refuse_index_overwrite(index: Path) -> None:
    """A split export's ``dataset_dict.json`` replaces only one a labeler export wrote
    (``datasets`` writes one without the mark), in a folder that is not itself a datasets
    folder (``load_from_disk`` would read that, and not the splits)."""
    folder = index.parent
    if (folder / "state.json").exists() or (folder / "dataset_info.json").exists():
        raise ExportError(
            f"{folder}: holds a dataset itself (an unsplit export?); a split export there "
            "would not be what load_from_disk reads: choose another --out; nothing written"
        )
    if index.is_symlink() or (index.exists() and not _is_our_index(index)):
        raise ExportError(
            f"{index}: exists and is not a dataset_dict.json a labeler export wrote; "
            "nothing written (choose another --out)"
        )


def _is_our_index(index: Path) -> bool:
    try:
        return bool(json.loads(index.read_text(encoding="utf-8")).get("made_by") == INDEX_MARK)
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def write_index(index: Path, splits: list[str]) -> None:
    """``dataset_dict.json`` beside the split folders (as ``DatasetDict.save_to_disk``
    writes it), so that ``load_from_disk`` reads the export as one DatasetDict."""
    tmp = index.with_name(f".{index.name}.tmp-p{os.getpid()}")
    try:
        tmp.write_text(_index_text(splits), encoding="utf-8")
        os.replace(tmp, index)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(write_failed(index, exc)) from None
