"""The OpenAI Batch API as OpenAI documents it — ``POST /v1/files`` (multipart upload,
purpose "batch"), ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``GET /v1/batches`` — served by ``JudgeServer`` for tests and the
demo: a fake of the paid service, answering each batch line with the server's own
chat-completions responder.

A batch is answered when it is first polled after ``release()`` (``hold_batches``: keep
it ``in_progress``). ``hang`` names steps where the server does the work and then never
answers (``upload``, ``create``) or sends half the file and stalls (``content``): the
point where a test kills the client. ``billed`` counts each custom_id answered, over all
batches: what the paid service would charge for.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Complete = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass
class Answer:
    status: int
    payload: bytes
    ctype: str = "application/json"
    hang: bool = False  # do the work, never answer
    partial: bool = False  # send half the body, then stall


def _json(status: int, obj: Any, hang: bool = False) -> Answer:
    return Answer(status, json.dumps(obj).encode(), hang=hang)


@dataclass
class BatchAPI:
    complete: Complete
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    hold_batches: bool = False
    billed: Counter[str] = field(default_factory=Counter)
    created: int = 0
    offered: bool = True  # False: 404 on every files/batches route, as many servers do
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        self.hold_batches = False

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer | None:
        route = path.split("?", 1)[0].rstrip("/")
        if not self.offered and re.search(r"/(files|batches)(/|$)", route):
            return _json(404, {"error": {"message": f"{route} not found"}})
        if method == "POST" and route.endswith("/files"):
            return self._upload(headers, raw)
        if method == "GET" and (m := re.search(r"/files/([^/]+)/content$", route)):
            return self._content(m.group(1))
        if method == "POST" and route.endswith("/batches"):
            return self._create(json.loads(raw or b"{}"))
        if method == "GET" and route.endswith("/batches"):
            return _json(
                200, {"object": "list", "data": list(self.batches.values()), "has_more": False}
            )
        if method == "GET" and (m := re.search(r"/batches/([^/]+)$", route)):
            return self._retrieve(m.group(1))
        return None

    def _upload(self, headers: dict[str, str], raw: bytes) -> Answer:
        boundary = headers.get("content-type", "").partition("boundary=")[2].strip('"')
        content, purpose, name = b"", "", "upload.jsonl"
        for part in raw.split(b"--" + boundary.encode()):
            head, _, body = part.partition(b"\r\n\r\n")
            body = body.removesuffix(b"\r\n")
            if b'name="file"' in head:
                content = body
                if (m := re.search(rb'filename="([^"]*)"', head)) is not None:
                    name = m.group(1).decode()
            elif b'name="purpose"' in head:
                purpose = body.decode()
        if purpose != "batch":
            return _json(400, {"error": {"message": f"purpose {purpose!r} is not 'batch'"}})
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = content
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": "batch",
            "status": "processed",
        }
        return _json(200, obj, hang="upload" in self.hang)

    def _create(self, body: dict[str, Any]) -> Answer:
        file_id = str(body.get("input_file_id", ""))
        if file_id not in self.files:
            return _json(404, {"error": {"message": f"No such File object: {file_id}"}})
        with self._lock:
            self.created += 1
            batch_id = f"batch_{self.created}"
            lines = [x for x in self.files[file_id].splitlines() if x.strip()]
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body.get("endpoint"),
                "errors": None,
                "input_file_id": file_id,
                "completion_window": body.get("completion_window", "24h"),
                "status": "in_progress",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata") or {},
            }
        return _json(200, self.batches[batch_id], hang="create" in self.hang)

    def _retrieve(self, batch_id: str) -> Answer:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _json(404, {"error": {"message": f"No such Batch object: {batch_id}"}})
        if batch["status"] == "in_progress" and not self.hold_batches:
            self._run(batch)
        return _json(200, batch)

    def _run(self, batch: dict[str, Any]) -> None:
        out: list[str] = []
        err: list[str] = []
        for raw in self.files[batch["input_file_id"]].splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            status, body = self.complete(line["body"])
            self.billed[line["custom_id"]] += status == 200
            entry = {
                "id": f"batch_req_{len(out) + len(err) + 1}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": "req", "body": body},
                "error": None,
            }
            (out if status == 200 else err).append(json.dumps(entry))
        with self._lock:
            for kind, lines in (("output", out), ("error", err)):
                if lines:
                    file_id = f"file-{len(self.files) + 1}"
                    self.files[file_id] = ("\n".join(lines) + "\n").encode()
                    batch[f"{kind}_file_id"] = file_id
            batch["status"] = "completed"
            batch["request_counts"] = {
                "total": len(out) + len(err),
                "completed": len(out),
                "failed": len(err),
            }

    def _content(self, file_id: str) -> Answer:
        if file_id not in self.files:
            return _json(404, {"error": {"message": f"No such File object: {file_id}"}})
        return Answer(
            200, self.files[file_id], "application/octet-stream", partial="content" in self.hang
        )
