"""Importing: the source read into the state as pairs (duplicates, near-identical
responses and bad rows counted; a source file unchanged since the last import is not read
again)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from labeler.config import Config
from labeler.errors import SourceError
from labeler.pairs import BadRow, Pair, near_identical, read_source
from labeler.store import Store
from labeler.summary import Progress, RoundSummary

BAD_ROW_EXAMPLES = 5
DUPLICATES = ("duplicate", "near_duplicate", "swapped_duplicate")  # skipped, not bad


class SourceTally:
    """Counts what a source yields while passing the pairs through."""

    def __init__(self, near: float = 2.0, drop_near: bool = False) -> None:
        self.pairs = 0
        self.skipped: Counter[str] = Counter()
        self.examples: list[str] = []
        self.bad: list[BadRow] = []
        self.near, self.drop_near = near, drop_near
        self.near_identical: dict[str, float] = {}
        self.keys: set[str] = set()  # order-free keys of the pairs yielded so far
        self.ids: dict[str, tuple[str, int]] = {}  # pairs read so far: where each was first

    def _bad(self, item: BadRow) -> None:
        self.skipped[item.kind] += 1
        self.bad.append(item)
        if len(self.examples) < BAD_ROW_EXAMPLES:
            self.examples.append(str(item))

    def pairs_of(
        self,
        items: Iterable[Pair | BadRow],
        stored: Callable[[list[str]], set[str]] | None = None,
        on_read: Callable[[int], None] | None = None,
        stored_keys: Callable[[list[str]], set[str]] | None = None,
    ) -> Iterator[Pair]:
        """The new pairs of ``items`` (``stored`` says which ids are in the state already:
        those were checked when they came in and are not yielded again). A pair whose
        responses are a stored or earlier pair's, swapped, is a duplicate (skipped), as is
        a row repeating an earlier row of the read."""
        for chunk in _chunks(items, 1000):
            ids = [i.id for i in chunk if isinstance(i, Pair)]
            old = stored(ids) if stored is not None and ids else set()
            fresh = [i for i in chunk if isinstance(i, Pair) and i.id not in old]
            keys = [i.key for i in fresh if i.key not in self.keys]
            taken = stored_keys(keys) if stored_keys is not None and keys else set()
            for item in chunk:
                if isinstance(item, BadRow):
                    self._bad(item)
                elif item.id in self.ids:  # a repeated row
                    self._bad(
                        BadRow(
                            item.source,
                            item.row,
                            _repeats(item, *self.ids[item.id]),
                            "duplicate",
                        )
                    )
                elif item.id in old:  # stored by an earlier read
                    self.ids[item.id] = (item.source, item.row)
                    self.pairs += 1
                elif item.key in taken or item.key in self.keys:
                    self._bad(
                        BadRow(
                            item.source,
                            item.row,
                            "the same pair as an earlier one, with the responses swapped",
                            "swapped_duplicate",
                        )
                    )
                else:
                    self.keys.add(item.key)
                    self.ids[item.id] = (item.source, item.row)
                    yield from self._new(item)
            if on_read is not None:
                on_read(self.pairs + sum(self.skipped.values()))

    def _new(self, item: Pair) -> Iterator[Pair]:
        similar = near_identical(item.response_a, item.response_b, self.near)
        if similar is not None and self.drop_near:
            self._bad(
                BadRow(
                    item.source,
                    item.row,
                    f"near-identical responses (similarity {similar:.3f})",
                    "near_duplicate",
                )
            )
            return
        if similar is not None:
            self.near_identical[item.id] = similar
        self.pairs += 1
        yield item


def _repeats(item: Pair, source: str, row: int) -> str:
    """Why a repeated row is skipped: the row (of the same file, or another) it repeats."""
    return f"the same pair as {'row ' if source == item.source else source + ':'}{row}"


def _chunks(items: Iterable[Pair | BadRow], size: int) -> Iterator[list[Pair | BadRow]]:
    chunk: list[Pair | BadRow] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_source(cfg: Config) -> None:
    """Under --strict: the first bad row is an error, before anything is imported."""
    for item in read_source(cfg.source):
        if isinstance(item, BadRow):
            raise SourceError(f"{item} (--strict stops at the first bad row)")


def import_source(
    store: Store,
    cfg: Config,
    summary: RoundSummary,
    on_progress: Callable[[Progress], None] | None = None,
) -> None:
    """Import the source's new pairs. A source file unchanged since the last import (same
    size, modification and change times, inode) is not read again; otherwise only pairs not in
    the state yet are checked (near-duplicates) and inserted."""
    q = cfg.quality
    key, seen = source_memo(store, cfg)
    if seen is not None:
        summary.source_pairs = int(seen["pairs"])
        summary.skipped = dict(seen["skipped"])
        summary.bad_row_examples = list(seen["examples"])
        return
    tally = SourceTally(q.near_duplicate_similarity, q.near_duplicates == "drop")
    before = _stamp(cfg.source.path) if key is not None else None

    def read(n: int) -> None:
        if on_progress is not None:
            on_progress(Progress(n, None, 0.0, 0, "importing"))

    summary.new_pairs = store.import_pairs(
        tally.pairs_of(read_source(cfg.source), store.existing_ids, read, store.existing_keys),
        tally.bad,
        str(cfg.source.path),
    )
    for pair_id, similar in tally.near_identical.items():
        store.flag(pair_id, "near_duplicate", f"similarity {similar:.3f}")
    summary.source_pairs = tally.pairs
    summary.skipped = dict(tally.skipped)
    summary.bad_row_examples = tally.examples
    if tally.pairs == 0:
        no_pairs(cfg, tally)
    # remembered only when the file did not change while it was read, and was last
    # modified long enough ago that a same-size edit would show in its mtime (git's
    # "racily clean" rule)
    if key is not None and before == _stamp(cfg.source.path):
        assert before is not None
        if time.time() - before[1] / 1e9 > RACY_S:
            memo = {"stamp": before, "pairs": tally.pairs, "skipped": dict(tally.skipped)}
            store.set_meta(key, json.dumps(memo | {"examples": tally.examples}))


RACY_S = 2.0


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def source_memo(store: Store, cfg: Config) -> tuple[str | None, dict[str, Any] | None]:
    """(meta key, what the last import of this exact file found), or (key, None) when it
    must be read; (None, None) for folders (their contents cannot be stamped cheaply)."""
    path = cfg.source.path
    if not path.is_file():
        return None, None
    s = cfg.source
    fields = [s.format, s.prompt_field, s.response_a_field, s.response_b_field]
    fields += [s.responses_field, s.split, str(s.max_row_bytes)]
    fields += [str(cfg.quality.near_duplicate_similarity), cfg.quality.near_duplicates]
    key = (
        "source:"
        + hashlib.sha256(json.dumps([str(path.resolve()), *fields]).encode()).hexdigest()[:16]
    )
    raw = store.get_meta(key)
    if raw is None:
        return key, None
    seen = json.loads(raw)
    return key, (seen if seen.get("stamp") == _stamp(path) else None)


def _head(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def no_pairs(cfg: Config, tally: SourceTally) -> None:
    """A source with no usable pair at all is a mistake to say, not 'nothing to do'."""
    path = cfg.source.path
    bad = [b for b in tally.bad if b.kind not in DUPLICATES]
    if bad:
        raise SourceError(
            f"{path}: none of its {len(bad)} rows is a usable pair (first: {bad[0]}); "
            "is it the right file, with the field names set in [source]?"
        )
    if path.is_file() and not tally.bad:  # not one row: blank, or a CSV header alone
        what = "is empty" if not _head(path).strip() else "has no rows (a header alone?)"
        raise SourceError(f"{path}: the file {what}; add pairs or point source.path elsewhere")
