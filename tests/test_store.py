"""The SQLite state: schema checks, the call cache, state moves."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labeler.errors import StateError
from labeler.pairs import BadRow, make_pair
from labeler.store import CallRecord, Store, VerdictRecord
from tests.conftest import good_bad_rows


def call(key: str, status: str = "ok") -> CallRecord:
    return CallRecord(
        key,
        "p",
        "ab",
        "m",
        "t",
        "g",
        1,
        status,
        "A HIGH",
        None,
        10,
        2,
        0.001,
        5.0,
        None if status == "ok" else "500",
    )


def test_import_is_idempotent_and_keeps_bad_rows(tmp_path: Path) -> None:
    pairs = [make_pair("q", "a", "b"), make_pair("q", "a", "c")]
    with Store(tmp_path / "s.sqlite") as store:
        assert store.import_pairs(pairs, [BadRow("f", 3, "why", "not_json")]) == 2
        assert store.import_pairs(pairs, [BadRow("f", 3, "why", "not_json")]) == 0
        assert store.state_counts()["imported"] == 2
        assert store.db.execute("SELECT COUNT(*) FROM bad_rows").fetchone()[0] == 1


def test_successful_calls_are_cached_once_errors_are_logged(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.record_call(call("k1", "error"))
        assert store.cached_calls(["k1"]) == {}
        store.record_call(call("k1"))
        store.record_call(call("k1"))  # a duplicate answer is ignored, not billed twice
        assert list(store.cached_calls(["k1", "k2"])) == ["k1"]
        totals = store.call_totals()
        assert totals["calls"] == 2 and totals["errors"] == 1
        assert totals["cost"] == pytest.approx(0.002)


def test_rounds_take_the_next_unassigned_pairs(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.import_pairs([make_pair("q", "a", str(i)) for i in range(5)], [])
        r1 = store.start_round(3, "m", "t", "g", {})
        assert store.count_round_pairs(r1) == 3 and store.unassigned_count() == 2
        assert store.open_round()["id"] == r1
        store.finish_round(r1, {}, "completed")
        assert store.open_round() is None
        r2 = store.start_round(None, "m", "t", "g", {})
        assert store.count_round_pairs(r2) == 2


def test_the_review_queue_is_read_in_file_order_and_its_texts_a_batch_at_a_time(
    tmp_path: Path,
) -> None:
    """A push reads the queue's ids, then the texts of the ids it asks for (past SQLite's
    500-parameter cap), in the order asked; a pair that left the queue meanwhile is not
    returned."""
    pairs = [make_pair(f"q{i}", "a", str(i)) for i in range(1200)]
    with Store(tmp_path / "s.sqlite") as store:
        store.import_pairs(pairs, [])
        round_id = store.start_round(None, "m", "t", "g", {})
        for i, p in enumerate(pairs):
            verdict = VerdictRecord(
                p.id, round_id, "m", "t", "g", "A", 0.6, False, {}, "review", "tie", 0
            )
            store.record_verdict(verdict, "needs_review" if i % 3 else "accepted")
        queue = store.review_queue()
        assert queue == [p.id for i, p in enumerate(pairs) if i % 3]
        asked = queue[::-1][:700]
        rows = store.pairs_for_review(asked)
        assert [r["id"] for r in rows] == asked
        assert rows[0]["response_b"] == pairs[1199].response_b and rows[0]["reason"] == "tie"
        store.record_pushed({asked[0]: False}, "d")
        assert [r["id"] for r in store.pairs_for_review(asked[:3])] == asked[1:3]
        assert store.pairs_for_review([pairs[0].id]) == []  # accepted, never in the queue


def test_rounds_drawn_at_random_take_the_lowest_draws_and_keep_them(tmp_path: Path) -> None:
    """``routing.round_order = "random"``: a round takes the waiting pairs with the lowest
    ``round_draw`` (not the first of the file); the pairs left keep their draws; a pair
    imported later draws above the highest draw taken (the cut). None: the file's
    order."""
    from labeler.routing import round_draw

    def ids_of(store: Store, round_id: int) -> set[str]:
        rows = store.db.execute("SELECT id FROM pairs WHERE round_id = ?", (round_id,))
        return {r[0] for r in rows}

    pairs = [make_pair("q", "a", str(i)) for i in range(40)]
    with Store(tmp_path / "s.sqlite") as store:
        store.import_pairs(pairs[:30], [])
        r1 = store.start_round(10, "m", "t", "g", {}, order_seed=7)
        first = sorted(pairs[:30], key=lambda p: round_draw(7, p.id))
        assert ids_of(store, r1) == {p.id for p in first[:10]} != {p.id for p in pairs[:10]}
        cut = round_draw(7, first[9].id)
        assert store.round_cut() == pytest.approx(cut)
        kept = dict(store.db.execute("SELECT id, round_draw FROM pairs WHERE round_id IS NULL"))
        assert kept == pytest.approx({p.id: round_draw(7, p.id) for p in first[10:]})
        store.finish_round(r1, {}, "completed")
        store.import_pairs(pairs[30:], [])
        r2 = store.start_round(10, "m", "t", "g", {}, order_seed=7)
        draws = kept | {p.id: round_draw(7, p.id, cut) for p in pairs[30:]}
        assert ids_of(store, r2) == set(sorted(draws, key=draws.__getitem__)[:10])
        store.finish_round(r2, {}, "completed")
        r3 = store.start_round(5, "m", "t", "g", {})  # the source's order
        waiting = [p for p in pairs if p.id not in ids_of(store, r1) | ids_of(store, r2)]
        assert ids_of(store, r3) == {p.id for p in waiting[:5]}


@pytest.mark.parametrize("before", ["nothing", "a source-order round", "six whole rounds"])
def test_a_round_after_new_pairs_arrive_is_a_uniform_sample_of_the_waiting_pairs(
    tmp_path: Path, before: str
) -> None:
    """Over 30 seeds: 100 pairs, a round of 20 (after six rounds that took every pair
    waiting, or followed by a source-order round of 30, as ``before`` says), then 80 new
    pairs: the next round of 40 takes old and new pairs alike (their shares of it equal
    their shares of the pool; the standard error of the mean over seeds is about 0.013).
    (The stretch: ``test_rounds_that_take_most_of_the_pool_stretch_the_draws_before_they_reach_1``.)
    Measured: new pairs drawn on [0, 1) made up 0.68 of it instead of 0.5;
    with the cut read from every pair a round took, a source-order round pushed them
    last; never reset, rounds that took every pair pushed the draws to 1.0 (the file's
    order again)."""
    shares, expected = [], []
    for seed in range(30):
        old = [make_pair(f"old {seed}", "a", str(i)) for i in range(100)]
        new = [make_pair(f"new {seed}", "a", str(i)) for i in range(80)]
        with Store(tmp_path / f"{seed}.sqlite") as store:
            if before == "six whole rounds":
                for k in range(6):
                    more = [make_pair(f"more {seed} {k}", "a", str(i)) for i in range(200)]
                    store.import_pairs(more, [])
                    store.start_round(None, "m", "t", "g", {}, order_seed=seed)
            store.import_pairs(old, [])
            store.start_round(20, "m", "t", "g", {}, order_seed=seed)
            if before == "a source-order round":
                store.start_round(30, "m", "t", "g", {})
            pool = store.unassigned_count()
            store.import_pairs(new, [])
            r2 = store.start_round(40, "m", "t", "g", {}, order_seed=seed)
            rows = store.db.execute("SELECT id FROM pairs WHERE round_id = ?", (r2,))
            taken = {r[0] for r in rows}
        shares.append(len(taken & {p.id for p in new}) / 40)
        expected.append(80 / (pool + 80))
    assert abs(np.mean(shares) - np.mean(expected)) < 0.03, (np.mean(shares), np.mean(expected))


def test_rounds_that_take_most_of_the_pool_stretch_the_draws_before_they_reach_1(
    tmp_path: Path,
) -> None:
    """Each round takes 90% of the pairs waiting, 100 new pairs between: the cut nears 1
    by a factor of 10 a round, so the pairs left are stretched back onto [0, 1) (never
    reset: pairs wait throughout). The draws stay distinct and below 1 (unstretched, they
    would reach 1.0 and the rounds would take the file's order), and every round is a
    uniform sample: the newest pairs' share of it equals their share of the pool."""
    stretched, shares, expected = 0, [], []
    with Store(tmp_path / "s.sqlite") as store:
        for k in range(30):
            store.import_pairs([make_pair(f"batch {k}", "a", str(i)) for i in range(100)], [])
            pool = store.unassigned_count()
            before = store.round_cut()
            r = store.start_round(pool * 9 // 10, "m", "t", "g", {}, order_seed=1)
            stretched += store.round_cut() < before
            rows = store.db.execute("SELECT id FROM pairs WHERE round_id = ?", (r,))
            fresh = {make_pair(f"batch {k}", "a", str(i)).id for i in range(100)}
            shares.append(len({row[0] for row in rows} & fresh) / (pool * 9 // 10))
            expected.append(100 / pool)
            draws = [
                d
                for (d,) in store.db.execute("SELECT round_draw FROM pairs WHERE round_id IS NULL")
            ]
            assert len(set(draws)) == len(draws) and max(draws) < 1.0
    assert stretched >= 3
    assert abs(np.mean(shares) - np.mean(expected)) < 0.03, (np.mean(shares), np.mean(expected))


def test_a_state_file_from_before_round_draws_draws_its_waiting_pairs(tmp_path: Path) -> None:
    """Migration 8: a schema-7 file gets the ``round_draw`` column; its waiting pairs are
    drawn when the next round starts."""
    from labeler.routing import round_draw

    db = tmp_path / "state.sqlite"
    pairs = [make_pair("q", "a", str(i)) for i in range(20)]
    with Store(db) as store:
        store.import_pairs(pairs, [])
    raw = sqlite3.connect(db)
    raw.execute("DROP INDEX pairs_to_draw")
    raw.execute("ALTER TABLE pairs DROP COLUMN round_draw")
    raw.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with Store(db) as store:
        r1 = store.start_round(4, "m", "t", "g", {}, order_seed=3)
        taken = {r[0] for r in store.db.execute("SELECT id FROM pairs WHERE round_id = ?", (r1,))}
        assert taken == {p.id for p in sorted(pairs, key=lambda p: round_draw(3, p.id))[:4]}
        indexes = store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        assert "pairs_to_draw" in {r[0] for r in indexes}


def test_looks_kept_before_their_labels_were_kept_no_longer_count_as_history(
    tmp_path: Path,
) -> None:
    """Migration 7: a state file whose group-sequential looks kept only which pairs they
    counted gets the score and verdict columns; its old rows have neither, so the next
    look does not read them as history (it tests at its own level instead)."""
    from labeler.looks import read_history

    db = tmp_path / "state.sqlite"
    Store(db).close()
    raw = sqlite3.connect(db)
    raw.execute("DROP TABLE look_evidence")
    raw.execute(
        "CREATE TABLE look_evidence (tier INTEGER NOT NULL, judge_version TEXT NOT NULL, "
        "phase INTEGER NOT NULL, pair_id TEXT NOT NULL, look INTEGER NOT NULL, "
        "PRIMARY KEY (tier, judge_version, phase, pair_id))"
    )
    raw.execute("INSERT INTO looks VALUES (0, '', 0, 0, 0.05, '[0.99]')")
    raw.execute("INSERT INTO look_evidence VALUES (0, '', 0, 'p1', 0)")
    raw.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with Store(db) as store:
        recorded = store.look_history(0, "", 0, 1)
        assert recorded == ([0.05], [0.99], {"p1": (0, None, None)})
        assert read_history(recorded, {"p1": (0.995, False)}, 1) == (None, None)
        store.record_look(0, "", 0, 1, 0.075, [0.99], {"p2": (0.97, True)})
        assert store.look_history(0, "", 0, 2)[2]["p2"] == (1, 0.97, True)


def test_newer_schema_and_garbage_files_are_clear_errors(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="written by a newer labeler"):
        Store(tmp_path / "s.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot open the state database"):
        Store(tmp_path / "junk.sqlite")


def test_an_emptied_or_deleted_state_is_refused_never_restarted(project: Any) -> None:
    """Issue 19: `: > .labeler/state.sqlite; labeler round` used to start a new project
    (every pair judged and paid again, the dataset rewritten). The project knows it had
    state (a marker written with the state) and refuses in one line."""
    project.pairs(good_bad_rows(4))
    assert project.run("round").exit_code == 0
    state = project.root / ".labeler" / "state.sqlite"
    dataset = project.root / ".labeler" / "dataset"
    rows_before = sorted(p.name for p in dataset.rglob("*"))
    state.write_bytes(b"")
    for command in ("round", "report", "calibrate", "status", "export"):
        extra = ["--out", str(project.root / "x.jsonl"), "--to", "jsonl"]
        args = [command, *(extra if command == "export" else [])]
        out = project.run(*args)
        assert out.exit_code == 1, (command, out.output)
        text = " ".join(out.output.split())
        assert "the state database is empty, but this project had state" in text, text
        assert "restore state.sqlite from your backup" in text and "Traceback" not in text
    assert state.stat().st_size == 0  # nothing was written
    assert sorted(p.name for p in dataset.rglob("*")) == rows_before
    state.unlink()
    out = project.run("round")
    assert out.exit_code == 1 and "the state database is missing" in " ".join(out.output.split())


def test_a_project_without_a_marker_but_with_a_dataset_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "state.sqlite").write_bytes(b"")
    with pytest.raises(StateError, match="dataset exists"):
        Store(tmp_path / "state.sqlite")
    fresh = tmp_path / "new" / "state.sqlite"
    with Store(fresh):
        pass
    assert fresh.with_name("state.sqlite.created").exists()


def _damage(db: Path) -> None:
    """Overwrite every third page after the second with noise (a bad disk, a bad copy)."""
    import random
    import sqlite3

    with sqlite3.connect(db) as con:
        size = con.execute("PRAGMA page_size").fetchone()[0]
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    rnd = random.Random(1)
    for page in range(3, len(data) // size, 3):
        data[page * size + 8 : (page + 1) * size] = rnd.randbytes(size - 8)
    db.write_bytes(bytes(data))


def test_a_damaged_state_database_is_one_line_with_the_way_out(project: Any) -> None:
    """Issue 19: a damaged page in `pairs` made every command a traceback. Now each says in
    one line (exit 1) which file is damaged, what `PRAGMA quick_check` found, and how to
    recover; none says "Nothing to do"."""
    project.pairs(good_bad_rows(300))
    assert project.run("round", "--limit", "100").exit_code == 0
    _damage(project.root / ".labeler" / "state.sqlite")
    for args in (
        ("round", "--limit", "100"),
        ("status",),
        ("report",),
        ("calibrate",),
        ("export", "--out", str(project.root / "x.jsonl"), "--to", "jsonl"),
    ):
        out = project.run(*args)
        assert out.exit_code == 1, (args, out.output)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "the state database is damaged" in lines[0], out.stderr
        assert "state.sqlite .recover" in lines[0] and "Nothing to do" not in out.output
        assert "Traceback" not in out.output


def test_sqlite_errors_read_as_what_to_do() -> None:
    from labeler.errors import state_failed

    io = state_failed("s.sqlite", sqlite3.OperationalError("disk I/O error"))
    assert io.startswith("s.sqlite: the state database could not be read or written")
    assert "permissions" in io
    ro = state_failed("s.sqlite", sqlite3.OperationalError("attempt to write a readonly database"))
    assert "read-only" in ro


def test_after_an_unclean_stop_a_damaged_state_is_found_on_opening(project: Any) -> None:
    """A command killed mid-write (the lock file still names it) makes the next one run
    `PRAGMA quick_check` when it opens the state: damage is reported before anything
    reads the file as a smaller project."""
    from labeler.lock import project_lock

    project.pairs(good_bad_rows(300))
    assert project.run("round", "--limit", "100").exit_code == 0
    state = project.root / ".labeler"
    _damage(state / "state.sqlite")
    (state / "lock").write_text('{"command": "round", "pid": 999999}')  # killed holder
    with project_lock(state, "round"), pytest.raises(StateError, match="is damaged"):
        Store(state / "state.sqlite")
