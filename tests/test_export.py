"""The DPO dataset on disk: columns, atomic replacement, refusing foreign folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

from labeler.errors import ExportError
from labeler.export import DPO_COLUMNS, dpo_row, save_dpo


def stored(i: int, label: str) -> dict[str, object]:
    return {
        "id": f"id{i}",
        "prompt": f"p{i}",
        "response_a": f"a{i}",
        "response_b": f"b{i}",
        "label": label,
        "confidence": 0.9,
        "round_id": 1,
        "model": "m",
        "template_hash": "t",
    }


def test_dpo_row_maps_the_label() -> None:
    assert dpo_row(stored(1, "A"))["chosen"] == "a1"
    row = dpo_row(stored(1, "B"))
    assert (row["chosen"], row["rejected"]) == ("b1", "a1")


def test_save_is_atomic_and_replaces_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "out" / "dataset"
    assert save_dpo([dpo_row(stored(i, "A")) for i in range(3)], target, parquet=True) == 3
    first = target.resolve()
    assert save_dpo([dpo_row(stored(i, "B")) for i in range(5)], target, parquet=True) == 5
    assert target.is_symlink() and target.resolve() != first and not first.exists()
    ds = datasets.load_from_disk(str(target))
    assert ds.num_rows == 5 and ds[0]["chosen"] == "b0"
    for column in DPO_COLUMNS:  # what TRL's DPO trainer needs: strings, no nulls
        assert ds.features[column].dtype == "string"
        assert all(isinstance(v, str) and v for v in ds[column])
    pq = datasets.Dataset.from_parquet(str(tmp_path / "out" / "dataset.parquet"))
    assert pq.num_rows == 5
    leftovers = [p.name for p in (tmp_path / "out").iterdir()]
    assert sorted(leftovers) == [".dataset.versions", "dataset", "dataset.parquet"]


def test_empty_dataset_is_still_loadable(tmp_path: Path) -> None:
    save_dpo([], tmp_path / "d", parquet=False)
    assert datasets.load_from_disk(str(tmp_path / "d")).num_rows == 0


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ExportError, match="was not written by labeler"):
        save_dpo([], tmp_path / "d", parquet=False)


def test_a_copied_project_reads_its_own_dataset(tmp_path: Path) -> None:
    """Issue 11: the dataset link was absolute, so a copy read the original's dataset."""
    import os
    import shutil

    target = tmp_path / "proj" / ".labeler" / "dataset"
    save_dpo([dpo_row(stored(i, "A")) for i in range(2)], target, parquet=False)
    assert not os.readlink(target).startswith("/")
    shutil.copytree(tmp_path / "proj", tmp_path / "copy", symlinks=True)
    save_dpo(
        [dpo_row(stored(i, "B")) for i in range(4)], target, parquet=False
    )  # original moves on
    copy = tmp_path / "copy" / ".labeler" / "dataset"
    assert copy.resolve().is_relative_to(tmp_path / "copy")
    assert datasets.load_from_disk(str(copy)).num_rows == 2
    shutil.move(tmp_path / "copy", tmp_path / "moved")
    assert datasets.load_from_disk(str(tmp_path / "moved" / ".labeler" / "dataset")).num_rows == 2


def test_every_card_carries_the_mark_an_export_is_known_by() -> None:
    """``export.refuse_overwrite`` replaces only what holds ``CARD_MARK`` in its card."""
    from labeler import export, publish

    assert export.CARD_MARK in publish.CARD


class Row(dict):  # type: ignore[type-arg]
    """A dataset row that can be watched for being freed (a plain dict cannot)."""


def watched(n: int, checked: int | None = None) -> tuple[Iterator[Row], list[int]]:
    """``n`` DPO rows (labelled B every third; row ``checked`` carries what labeler verify
    found), and a list whose one number becomes the most of them alive at once."""
    import gc
    import weakref

    alive, most = [0], [0]

    def freed() -> None:
        alive[0] -= 1

    def rows() -> Iterator[Row]:
        for i in range(n):
            row = Row(dpo_row(stored(i, "AB"[i % 3 == 0])))
            if i == checked:
                row.update(rm_margin=-0.5, rm_flag=True)
            alive[0] += 1
            weakref.finalize(row, freed)
            if i % 100 == 0:
                gc.collect()
                most[0] = max(most[0], alive[0])
            yield row

    return rows(), most


def test_the_dataset_is_written_a_batch_at_a_time_in_order(tmp_path: Path) -> None:
    """Every round, sync and calibration rewrites the whole dataset: ``save_dpo`` reads its
    rows a batch at a time (``BATCH_ROWS``) and never holds them all (100,000 pairs of
    long answers would be gigabytes). The rows arrive whole and in order, and the verify
    columns are there when only a row of a later batch has them."""
    from labeler.export import BATCH_ROWS, VERIFY_COLUMNS

    n = 3 * BATCH_ROWS + 7
    rows, most = watched(n, checked=n - 2)
    target = tmp_path / "dataset"
    assert save_dpo(rows, target, parquet=True) == n
    assert most[0] <= 2 * BATCH_ROWS  # (all of them: n)
    for ds in (
        datasets.load_from_disk(str(target)),
        datasets.Dataset.from_parquet(str(tmp_path / "dataset.parquet")),
    ):
        assert ds.num_rows == n and ds["pair_id"] == [f"id{i}" for i in range(n)]
        assert ds["chosen"] == [f"{'ab'[i % 3 == 0]}{i}" for i in range(n)]
        assert set(VERIFY_COLUMNS) <= set(ds.column_names)
        assert ds["rm_margin"][n - 2] == -0.5 and ds["rm_margin"][0] is None
    # no row checked by labeler verify: no verify columns
    save_dpo([dpo_row(stored(i, "A")) for i in range(3)], target, parquet=False)
    assert not set(VERIFY_COLUMNS) & set(datasets.load_from_disk(str(target)).column_names)
    assert [p.name for p in (tmp_path / ".dataset.versions").iterdir()] == [
        target.resolve().name
    ]  # (no build folder left)


@pytest.mark.parametrize("to", ["disk", "parquet", "jsonl"])
def test_an_export_is_written_a_batch_at_a_time_in_order(tmp_path: Path, to: str) -> None:
    """``labeler export`` streams its rows into the files the same way (``write_export``):
    never all of them at once, every one in order, nothing but the export left beside."""
    from labeler.export import BATCH_ROWS, write_export

    n = 3 * BATCH_ROWS + 7
    rows, most = watched(n)
    out = tmp_path / f"prefs.{ {'disk': 'arrow'}.get(to, to) }"
    write_export(rows, [*DPO_COLUMNS, "pair_id"], to, out, "a card")
    assert most[0] <= 2 * BATCH_ROWS
    read = {
        "disk": datasets.load_from_disk,
        "parquet": datasets.Dataset.from_parquet,
        "jsonl": datasets.Dataset.from_json,
    }[to]
    ds = read(str(out))
    assert ds.num_rows == n and ds["pair_id"] == [f"id{i}" for i in range(n)]
    assert ds.column_names == [*DPO_COLUMNS, "pair_id"]
    beside = sorted(p.name for p in tmp_path.iterdir())
    card = [] if to == "disk" else [f"{out.name}.README.md"]  # (a folder holds its own)
    assert beside == [out.name, *card]


@pytest.mark.parametrize("to", ["disk", "parquet", "jsonl"])
def test_the_same_rows_export_to_the_same_bytes(tmp_path: Path, to: str) -> None:
    """A review finding: a --to disk export's state.json took its fingerprint from the
    temporary file it was streamed through, so two exports of the same state differed."""
    from labeler.export import write_export

    def files(out: Path) -> dict[str, bytes]:
        found = sorted(out.rglob("*")) if out.is_dir() else [out]
        return {str(p.relative_to(out.parent)): p.read_bytes() for p in found if p.is_file()}

    made = []
    for name in ("a", "b"):
        out = tmp_path / name / f"prefs.{ {'disk': 'arrow'}.get(to, to) }"
        out.parent.mkdir()
        rows = [dpo_row(stored(i, "AB"[i % 2])) for i in range(30)]
        write_export(rows, [*DPO_COLUMNS, "pair_id", "confidence"], to, out, "card")
        made.append(files(out))
    assert made[0] == made[1] and len(made[0]) >= 1
