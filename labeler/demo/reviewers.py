"""Reviewers driven through Argilla's HTTP API, making the same calls as its web UI.

``ReviewerSession`` logs in with a username and password (``POST /api/v1/token``), lists
the records pending for that reviewer (``POST /api/v1/me/datasets/{id}/records/search``
with "response status pending for me AND record status pending", as the UI's annotation
view does) and submits or discards responses (``POST /api/v1/records/{id}/responses``).
The demo's simulated reviewers and the tests use it. Standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

PENDING_QUERY = {
    "filters": {
        "and": [
            {
                "type": "terms",
                "scope": {"entity": "response", "property": "status"},
                "values": ["pending"],
            },
            {
                "type": "terms",
                "scope": {"entity": "record", "property": "status"},
                "values": ["pending"],
            },
        ]
    }
}


class ReviewerSession:
    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        token = self.call(
            "POST", "/api/v1/token", form={"username": username, "password": password}
        )
        self.token = token["access_token"]

    def call(
        self, method: str, path: str, body: Any = None, form: dict[str, str] | None = None
    ) -> Any:
        headers = {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def dataset_id(self, name: str) -> str:
        for ds in self.call("GET", "/api/v1/me/datasets")["items"]:
            if ds["name"] == name:
                return str(ds["id"])
        raise LookupError(f"no dataset {name!r} visible to this reviewer")

    def pending(self, dataset_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The next records for this reviewer, in the order the web UI shows them."""
        result = self.call(
            "POST",
            f"/api/v1/me/datasets/{dataset_id}/records/search"
            f"?include=responses&include=suggestions&limit={limit}",
            PENDING_QUERY,
        )
        return [item["record"] for item in result["items"]]

    def submit(
        self, record_id: str, label: str, reason: str | None = None, question: str = "preference"
    ) -> str:
        """Submit a verdict; returns the response's id (``change`` takes it)."""
        values: dict[str, Any] = {question: {"value": label}}
        if reason:
            values["reason"] = {"value": reason}
        made = self.call(
            "POST",
            f"/api/v1/records/{record_id}/responses",
            {"values": values, "status": "submitted"},
        )
        return str(made["id"])

    def change(self, response_id: str, status: str, label: str | None = None) -> None:
        """Change a response given earlier, as the web UI does: another label, back to a
        draft (its Save), or discarded (``values`` None)."""
        values = None if status == "discarded" else {"preference": {"value": label}}
        self.call("PUT", f"/api/v1/responses/{response_id}", {"values": values, "status": status})

    def discard(self, record_id: str) -> None:
        self.call(
            "POST",
            f"/api/v1/records/{record_id}/responses",
            {"values": None, "status": "discarded"},
        )

    def progress(self, dataset_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/api/v1/me/datasets/{dataset_id}/metrics")
        return result
