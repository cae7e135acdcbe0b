"""Writing the project's DPO dataset from the state (after a round, a sync or a
calibration). Its own home so that ``rounds`` and ``sync`` both depend on it and not on
each other: rounds -> sync -> dataset, rounds -> dataset."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labeler.config import Config
from labeler.errors import ConfigError, write_failed
from labeler.store import Store


def check_dataset_dir(cfg: Config, probe: bool = False) -> None:
    """Refuse, before a round spends anything on the judge, an ``output.dataset_dir`` the
    dataset cannot be written to: something there that labeler did not write (the
    project's folder, a folder of the user's), or, with ``probe`` (a round, not a dry
    run), a place where its folder cannot be made or written (a file made and removed in
    it and in the folder that holds it, as the dataset's versions and link are).
    ``save_dpo`` refuses both too, but only after the judging was paid for."""
    from labeler.export import foreign_dataset_dir, versions_dir

    path = cfg.output.dataset_dir
    if foreign_dataset_dir(path.absolute()):
        raise ConfigError(
            f"output.dataset_dir: {path} exists and was not written by labeler (it keeps a "
            "link to its latest dataset there); move it away or set output.dataset_dir to "
            "another path"
        )
    if not probe:
        return
    folder = versions_dir(path.absolute())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for where in (folder, folder.parent):  # its versions; its link and Parquet file
            with tempfile.NamedTemporaryFile(dir=where, prefix=".probe-"):
                pass
    except OSError as exc:
        raise ConfigError(
            f"output.dataset_dir: {write_failed(path, exc, 'write the dataset there')}; set "
            "output.dataset_dir to a folder you can write (nothing was judged)"
        ) from None


WRITTEN = "dataset-written"  # meta: what the dataset at output.dataset_dir holds


def write_dataset(store: Store, cfg: Config) -> int:
    """Write the DPO dataset (human labels, and judge labels the thresholds in force
    certify, or all judge labels with ``output.certified_only = false``); returns its row
    count. A dataset that would come out the same as the one in place (a sync that
    brought no decision, a calibration that moved no label) is left as it is: the rows'
    ``signature`` — the labels and provenance read without the texts, which a pair's id
    fixes — is kept with the version written, so 100k long pairs are not rewritten for
    nothing."""
    from labeler import export

    signature, count, unmarked = _signature(store, cfg)
    last = _written(store)
    if _in_place(cfg, last, signature):
        store.mark_exported(unmarked)  # (a sync stopped before its write left some unmarked)
        if last.get("rows") != count:  # (kept by an older labeler, without its count)
            store.set_meta(WRITTEN, json.dumps(last | {"rows": count}))
        return count
    ids: list[str] = []  # (the rows themselves are streamed, a batch at a time)

    def rows() -> Iterator[dict[str, Any]]:
        for row in store.dataset_rows(cfg.output.certified_only):
            ids.append(row["id"])
            yield export.dpo_row(dict(row))

    count = export.save_dpo(rows(), cfg.output.dataset_dir, cfg.output.parquet)
    store.mark_exported(ids)
    where = cfg.output.dataset_dir.absolute()
    version = os.path.realpath(where)
    written = {"dir": str(where), "version": version, "signature": signature, "rows": count}
    store.set_meta(WRITTEN, json.dumps(written | {"files": _files(cfg, Path(version))}))
    return count


def rows_in_place(store: Store, cfg: Config) -> int:
    """The rows of the dataset last written at ``output.dataset_dir`` (0: none there, or
    its version folder is gone), read from what the write kept (a write by an older
    labeler kept no count: counted from the state, without the texts)."""
    last = _written(store)
    where = str(cfg.output.dataset_dir.absolute())
    if last.get("dir") != where or not Path(last.get("version", "")).is_dir():
        return 0
    return int(last["rows"]) if "rows" in last else _signature(store, cfg)[1]


def _files(cfg: Config, version: Path) -> list[list[Any]]:
    """(name, size, modified ns) of each file of the dataset's version folder, and of its
    Parquet file when asked for: what ``_in_place`` finds unchanged or not."""
    paths = sorted(version.iterdir()) if version.is_dir() else []
    where = cfg.output.dataset_dir.absolute()
    paths += [where.with_name(where.name + ".parquet")] if cfg.output.parquet else []
    out = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            return [["missing", str(path)]]
        out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


def _signature(store: Store, cfg: Config) -> tuple[str, int, list[str]]:
    """(a hash of what the dataset's rows would be, their count, the pairs among them not
    marked exported), from a pass without the texts; with the settings and the version
    that shape the files."""
    from labeler import __version__, export

    shape = [__version__, export.DPO_COLUMNS, export.PROVENANCE_COLUMNS, export.VERIFY_COLUMNS]
    h = hashlib.sha256(json.dumps([*shape, cfg.output.parquet]).encode())
    count, unmarked = 0, []
    for row in store.dataset_rows(cfg.output.certified_only, texts=False):
        count += 1  # (label, its source and status, confidence, round, judge, verify's ...)
        kept = [row[k] for k in row.keys() if k != "pair_state"]  # noqa: SIM118 (a Row yields values)
        h.update(json.dumps(kept).encode())
        if row["pair_state"] != "exported":
            unmarked.append(row["id"])
    return h.hexdigest(), count, unmarked


def _written(store: Store) -> dict[str, Any]:
    """What the last write of the dataset kept ({}: none, or a record that cannot be
    read: the dataset is then written anew)."""
    try:
        last = json.loads(store.get_meta(WRITTEN) or "{}")
    except ValueError:
        return {}
    return last if isinstance(last, dict) else {}


def _in_place(cfg: Config, last: dict[str, Any], signature: str) -> bool:
    """Is the dataset at ``output.dataset_dir`` the one last written (``last``: what that
    write kept), with these rows, still there as written (its link; its version folder's
    files and its Parquet file when asked for, by name, size and time)?"""
    where = cfg.output.dataset_dir.absolute()
    if last.get("signature") != signature or last.get("dir") != str(where):
        return False
    version = Path(last.get("version", ""))
    return (
        where.is_symlink()
        and os.path.realpath(where) == str(version)
        and last.get("files") == _files(cfg, version)  # (none removed, changed or added)
    )
