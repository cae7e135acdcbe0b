"""The Batch API side of a round (``labeler round --batch``; OpenAI's Batch API costs half
the online price and has its own rate limits).

A tier's missing requests are written as JSONL files (``<state_dir>/batches/``, at most
50,000 requests or 190 MB each), registered in the state, uploaded (``/v1/files``) and
submitted as batches (``/v1/batches``, labeler's key in the batch metadata). Later runs
(``labeler round`` again, or ``labeler batches``) poll them; a finished batch's output
and error files are downloaded and recorded as the round's judge calls, at batch prices,
and the round then routes them exactly as replies got online.

Every step is resumable after ``kill -9``, and no request is paid twice:

* killed while writing: the file is not registered yet (written under a temporary name);
  the next run writes it again;
* killed after registering, or during the upload: the next run uploads it (uploads are
  free; a stray file is never run);
* killed after the batch was created but before its id was stored: the next run finds it
  by its key in the metadata instead of creating another;
* killed while downloading or recording: results are recorded with the batch's
  ``ingested`` mark in one transaction, so the next run downloads and records them again
  from the start, once.

Requests a finished batch did not answer (an expired batch, a failed line) stay missing
and go into the next batch; failed lines count towards ``judge.max_failed_attempts``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labeler.costs import Prices
from labeler.errors import JudgeError, StateError, UsageError, shown_url, write_failed
from labeler.judge import BATCH_ENDPOINT, OpenAIBatches, batch_result
from labeler.store import CallRecord, Store

MAX_REQUESTS = 50_000  # OpenAI's limits per batch file
MAX_BYTES = 190 * 2**20  # (200 MB), with room to spare


@dataclass
class BatchFile:
    path: Path
    requests: int = 0
    size: int = 0


@dataclass
class BatchWriter:
    """Takes the place of the online judge in a round's engine: each request is written to
    a batch file instead of being sent. ``body_of`` builds the request body."""

    folder: Path
    round_id: int
    tier: int
    body_of: Callable[[list[dict[str, str]]], dict[str, Any]]
    files: list[BatchFile] = field(default_factory=list)
    _fh: Any = None

    @property
    def requests(self) -> int:
        return sum(f.requests for f in self.files)

    def add(self, custom_id: str, messages: list[dict[str, str]]) -> None:
        try:
            self._add(custom_id, messages)
        except OSError as exc:  # a full disk: one line, and the next run writes it again
            raise StateError(write_failed(self.folder, exc)) from None

    def _add(self, custom_id: str, messages: list[dict[str, str]]) -> None:
        line = json.dumps(
            {
                "custom_id": custom_id,
                "method": "POST",
                "url": BATCH_ENDPOINT,
                "body": self.body_of(messages),
            }
        ).encode()
        current = self.files[-1] if self.files else None
        if (
            current is None
            or current.requests >= MAX_REQUESTS
            or current.size + len(line) + 1 > MAX_BYTES
        ):
            current = self._open()
        self._fh.write(line + b"\n")
        current.requests += 1
        current.size += len(line) + 1

    def _open(self) -> BatchFile:
        self._close_current()
        self.folder.mkdir(parents=True, exist_ok=True)
        key = f"r{self.round_id}-t{self.tier}-{uuid.uuid4().hex[:10]}"
        made = BatchFile(self.folder / f".{key}.jsonl.tmp")
        self.files.append(made)
        self._fh = made.path.open("wb")
        return made

    def _close_current(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def finish(self) -> list[tuple[str, Path, int]]:
        """Close the files under their final names: (key, path, requests) each."""
        try:
            self._close_current()
        except OSError as exc:
            raise StateError(write_failed(self.folder, exc)) from None
        out = []
        for f in self.files:
            key = f.path.name[1:].removesuffix(".jsonl.tmp")
            final = f.path.with_name(f"{key}.jsonl")
            f.path.replace(final)
            out.append((key, final, f.requests))
        return out

    def discard(self) -> None:
        """Drop the files written so far (a failed run: the next one writes them again)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush too
                self._fh.close()
            self._fh = None
        for f in self.files:
            f.path.unlink(missing_ok=True)


def custom_id(cache_key: str, pair_id: str, slot: str) -> str:
    return f"{cache_key}:{pair_id}:{slot}"


@dataclass(frozen=True)
class Recording:
    """What a batch's results are recorded with (the tier's call settings)."""

    model: str
    template_hash: str
    guidelines_hash: str
    prices: Prices
    price_share: float  # the Batch API's price as a share of the online price


def sweep_temp(folder: Path) -> None:
    """Remove the temporary files of a run killed while writing or downloading (all
    labeler's batch files start with "r<round>-"; one writer per project holds the lock)."""
    from labeler.export import sweep

    sweep(folder, (".r",))


def submit(store: Store, api: OpenAIBatches, writer: BatchWriter) -> None:
    """Register the writer's files, then upload and create their batches."""
    for key, path, requests in writer.finish():
        store.add_batch(key, writer.round_id, writer.tier, str(path), requests)
    for row in store.batches(writer.round_id):
        if row["status"] != "ingested" and row["tier"] == writer.tier:
            _submit(store, api, row)


def _submit(store: Store, api: OpenAIBatches, row: Any) -> str:
    """Upload and create a registered batch that is not submitted yet; its batch id."""
    key, file_id, batch_id = row["key"], row["file_id"], row["batch_id"]
    if batch_id:
        return str(batch_id)
    # uploaded by an earlier run, which may have been killed after creating the batch
    # and before storing its id: look for it before creating one
    found = api.find(key) if row["status"] == "uploaded" and file_id else None
    if row["status"] == "written" or not file_id:
        file_id = api.upload(Path(row["path"]))
        store.update_batch(key, file_id=file_id, status="uploaded")
    batch_id = found or api.create(file_id, key)
    store.update_batch(key, batch_id=batch_id, status="submitted")
    return batch_id


def drop_unsubmitted(store: Store, api_of: Callable[[int], OpenAIBatches], round_id: int) -> int:
    """``labeler round --online``: forget the round's batches that never reached the Batch
    API, or that it no longer knows (a 404 for the batch: the key or the endpoint changed,
    or the provider dropped it), so their requests are sent online; refused in one line
    when one is there, as its replies are paid for and on their way. ``api_of(tier)``
    opens that tier's Batch API, asked about a stored batch, and about an uploaded file
    whose batch may exist without its id stored (a run killed in between; an endpoint
    answering 404 to the batch list is taken to have no Batch API, so no batch). Returns
    how many were dropped."""
    rows = [r for r in store.batches(round_id) if r["status"] != "ingested"]
    for row in rows:
        found = row["batch_id"]
        if found or row["status"] == "uploaded":
            api = api_of(int(row["tier"]))
            try:
                if not found:
                    found = api.find(row["key"], absent_ok=True)
                    if found:  # kept, so that nothing is paid twice
                        store.update_batch(row["key"], batch_id=found, status="submitted")
                elif api.state(found) is None:  # the endpoint does not know it: given up
                    found = None
            finally:
                api.close()
        if found:
            raise UsageError(
                f"round {round_id} has batch {found} at the Batch API: its replies are paid "
                "for; run `labeler batches` to collect them (not --online)"
            )
    store.drop_batches(r["key"] for r in rows)
    for row in rows:
        Path(row["path"]).unlink(missing_ok=True)
    return len(rows)


def advance(store: Store, api: OpenAIBatches, rec: Recording, round_id: int, tier: int) -> int:
    """Move the round's unfinished batches of ``tier`` on (upload, create, poll; download
    and record the finished ones). Returns how many are still running."""
    running, unknown = 0, []
    for row in store.batches(round_id):
        if row["status"] == "ingested" or row["tier"] != tier:
            continue
        batch_id = _submit(store, api, row)
        state = api.state(batch_id)
        if state is None:  # the others are still collected
            unknown.append(batch_id)
            continue
        store.update_batch(row["key"], remote_status=state.status)
        if state.running:
            running += 1
            continue
        files = []
        for file_id, suffix in ((state.output_file_id, "output"), (state.error_file_id, "errors")):
            if file_id:
                path = Path(row["path"]).with_name(f"{row['key']}-{suffix}.jsonl")
                api.download(file_id, path)
                files.append(path)
        records = _records(files, row, round_id, tier, rec, api.key)
        store.ingest_batch(row["key"], records, state.status)
        for path in (*files, Path(row["path"])):  # recorded: the files are not needed again
            path.unlink(missing_ok=True)
        if state.status == "failed" and not files:
            raise JudgeError(
                f"batch {batch_id} failed at {shown_url(api.cfg.base_url)}: "
                f"{state.message or 'no reason given'}; fix it and run `labeler round` again"
            )
    if unknown:
        others = (
            f"; {running} other batch{'es' if running != 1 else ''} of the round still "
            f"run{'s' if running == 1 else ''} at the Batch API"
            if running
            else ""
        )
        raise JudgeError(
            f"judge at {shown_url(api.cfg.base_url)} does not know batch "
            f"{', '.join(unknown)} (batch status: 404): were judge.base_url or the API key "
            "changed since it was made? Restore them and run `labeler batches`, or give it "
            "up with `labeler round --online` (its pairs are judged online, at full price, "
            f"once the round's other batches are collected){others}"
        )
    return running


def _records(
    files: list[Path], row: Any, round_id: int, tier: int, rec: Recording, key: str | None
) -> Iterator[CallRecord]:
    for path in files:
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                cid, reply = batch_result(json.loads(raw), key)
                cache_key, pair_id, slot = [*cid.split(":", 2), "", ""][:3]
                if not pair_id:
                    continue  # not a request of ours
                cost = rec.price_share * rec.prices.call_cost(
                    reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens
                )
                status = "ok" if not reply.error else "refused" if reply.permanent else "error"
                yield CallRecord(
                    cache_key,
                    pair_id,
                    slot,
                    rec.model,
                    rec.template_hash,
                    rec.guidelines_hash,
                    round_id,
                    status,
                    reply.text,
                    reply.positions,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    cost,
                    None,
                    reply.error,
                    0,
                    reply.cached_tokens,
                    tier,
                    str(row["key"]),
                )
