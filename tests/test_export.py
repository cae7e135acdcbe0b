"""The DPO dataset on disk: columns, atomic replacement, refusing foreign folders."""

from __future__ import annotations

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
