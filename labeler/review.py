"""The review adapter: the only module that imports ``argilla`` (the SDK).

It creates the review dataset (idempotently), pushes pairs as records, pulls the
reviewers' responses and manages reviewer accounts. It deals in plain values
(``ReviewRecord`` in, ``HumanResponse`` out); which response is shown first, how answers
map back and how votes combine is decided in ``labeler.consensus``.

Argilla errors are translated into ``ReviewError`` (with what to do) or
``ReviewUnavailable`` (the server cannot be reached: work stays queued).
"""

from __future__ import annotations

import copy
import html
import itertools
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from labeler.errors import ConfigError, ReviewError, shown_url

os.environ.setdefault("TQDM_DISABLE", "1")  # the SDK draws progress bars on stderr
# ...and logs a warning each time it adjusts a batch size: not news for our users
logging.getLogger("argilla.sdk").setLevel(logging.ERROR)

QUESTION = "preference"
REASON_QUESTION = "reason"
LABELS = {"A": "Response A", "B": "Response B", "tie": "Tie", "both_bad": "Both bad"}
FIELDS = (("prompt", "Prompt"), ("response_a", "Response A"), ("response_b", "Response B"))
HINT_FIELD = "judge_hint"
PAGE = 1000

T = TypeVar("T")


def shown(text: str) -> str:
    """A text as reviewers must see it: Argilla's text fields render HTML even with
    Markdown off (a `<details>` block became a collapsed widget), so ``& < >`` are sent
    as entities and show as themselves; everything else is left as the judge saw it."""
    return html.escape(text, quote=False)


class ReviewUnavailable(ReviewError):
    """Argilla could not be reached; nothing was lost, the work stays queued."""


@dataclass(frozen=True)
class ReviewRecord:
    """One pair as reviewers see it (already in shown order)."""

    pair_id: str
    prompt: str
    first: str
    second: str
    round_id: int
    hint: str | None = None  # the judge's verdict as text, shown only where it is no evidence
    swapped: bool = False  # shown as (response_b, response_a)


@dataclass(frozen=True)
class HumanResponse:
    pair_id: str
    reviewer: str
    status: str  # submitted | discarded | draft
    label: str | None  # a LABELS key, in shown terms
    reason: str | None
    inserted_at: str
    updated_at: str
    response_id: str = ""
    values: dict[str, Any] | None = None  # as Argilla stores them (to write them back)


class ArgillaReview:
    """A connection to one Argilla server, workspace and dataset."""

    def __init__(
        self, api_url: str, api_key: str, workspace: str, dataset: str, timeout: float = 30.0
    ):
        self.api_url, self.workspace_name, self.dataset_name = api_url, workspace, dataset
        self.shown = shown_url(api_url)  # as messages show it
        import argilla as rg

        self.rg = rg
        self._check_key(api_key, timeout)
        self.client = self._call(
            lambda: rg.Argilla(api_url=api_url, api_key=api_key, timeout=int(timeout), retries=1)
        )

    def _check_key(self, api_key: str, timeout: float) -> None:
        """Try the key with a client we close ourselves: the SDK's constructor leaks its
        connection when it refuses a key."""
        import httpx

        def check() -> None:
            with httpx.Client(base_url=self.api_url, timeout=timeout) as http:
                reply = http.get("/api/v1/me", headers={"X-Argilla-Api-Key": api_key})
                kind = reply.headers.get("content-type", "").split(";")[0].strip()
                if reply.status_code >= 500:  # a proxy's error page: Argilla behind it is down
                    raise ReviewUnavailable(
                        f"Argilla at {self.shown} answered {reply.status_code}: is it "
                        "running? (start it with `labeler serve`)"
                    )
                if kind != "application/json":  # a web page
                    what = f"{kind or 'no content type'} ({reply.status_code})"
                    raise ReviewError(self._not_argilla(what))
                reply.raise_for_status()

        self._call(check)

    def _not_argilla(self, what: str) -> str:
        return (
            f"{self.shown} answered with {what}, not Argilla's API; check review.api_url "
            "(it is the Argilla server's base URL, e.g. http://127.0.0.1:6900)"
        )

    def with_dataset(self, name: str) -> ArgillaReview:
        """The same connection to another dataset of the workspace (closing either closes
        the connection of both)."""
        other = copy.copy(self)
        other.dataset_name = name
        return other

    def close(self) -> None:
        self.client.http_client.close()

    def __enter__(self) -> ArgillaReview:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        from argilla._exceptions import ArgillaAPIError, ArgillaCredentialsError, UnauthorizedError
        from httpx import HTTPError, HTTPStatusError

        try:
            with warnings.catch_warnings():
                # the SDK warns "not found" on lookups whose None answer we handle
                warnings.simplefilter("ignore", UserWarning)
                return fn()
        except (UnauthorizedError, ArgillaCredentialsError):
            raise ReviewError(
                f"Argilla at {self.shown} refused the API key (401); check "
                "review.api_key_env, or the secrets file of `labeler serve`"
            ) from None
        except HTTPStatusError as exc:
            if exc.response.status_code == 401:
                raise ReviewError(f"Argilla at {self.shown} refused the API key (401)") from None
            raise ReviewError(
                f"Argilla at {self.shown} answered {exc.response.status_code}"
                f": {' '.join(exc.response.text.split())[:200]}"  # one line
            ) from None
        except ArgillaAPIError as exc:
            raise ReviewError(f"Argilla at {self.shown}: {exc}") from None
        except ValueError:  # a body that is not JSON: something else answers at that URL
            raise ReviewError(self._not_argilla("a body that is not JSON")) from None
        except (HTTPError, OSError) as exc:
            raise ReviewUnavailable(
                f"Argilla at {self.shown} is not reachable ({exc}); start it with `labeler serve`"
            ) from None

    # -- the dataset -----------------------------------------------------------------------

    def _workspace(self) -> Any:
        ws = self._call(lambda: self.client.workspaces(self.workspace_name))
        if ws is None:
            raise ReviewError(
                f"Argilla at {self.shown} has no workspace "
                f"'{self.workspace_name}' (review.workspace); create it or fix "
                "the name"
            )
        return ws

    def find_dataset(self) -> Any | None:
        ws = self._workspace()
        return self._call(lambda: self.client.datasets(self.dataset_name, workspace=ws))

    def dataset(self) -> Any:
        ds = self.find_dataset()
        if ds is None:
            raise ReviewError(
                f"the Argilla dataset '{self.dataset_name}' in workspace "
                f"'{self.workspace_name}' does not exist (deleted by hand?); "
                "run `labeler sync --repush` to recreate it and push the pairs "
                "in review again"
            )
        return ds

    def ensure_dataset(self, guidelines: str, min_submitted: int) -> bool:
        """Create the review dataset unless it exists; True when it was created."""
        if self.find_dataset() is not None:
            return False
        rg = self.rg
        settings = rg.Settings(
            guidelines=guidelines,
            # plain text: reviewers see exactly what the judge saw (Markdown would hide
            # `<details>` contents and eat the stars of `2*3*4`)
            fields=[rg.TextField(name=n, title=t, use_markdown=False) for n, t in FIELDS]
            + [rg.TextField(name=HINT_FIELD, title="What the judge said", required=False)],
            questions=[
                rg.LabelQuestion(
                    name=QUESTION, title="Which response is better?", labels=LABELS, required=True
                ),
                rg.TextQuestion(
                    name=REASON_QUESTION,
                    title="Why? (optional; Shift+Enter to write, Esc, then Enter submits)",
                    required=False,
                    use_markdown=False,
                ),
            ],
            # nothing about why a pair is here or how sure the judge was: audit pairs must
            # look like every other pair (that stays in labeler's state)
            metadata=[rg.IntegerMetadataProperty(name="round", title="Round")],
            distribution=rg.TaskDistribution(min_submitted=min_submitted),
        )
        ds = rg.Dataset(
            name=self.dataset_name,
            workspace=self._workspace(),
            settings=settings,
            client=self.client,
        )
        self._call(ds.create)
        return True

    def check_reviewers(self, had: Any, need: int, ds: Any | None = None) -> None:
        """Refuse (ConfigError) a dataset made for ``had`` reviewers a record when the
        config now asks ``need`` (``had`` None: read from ``ds``, the SDK's dataset)."""
        if had is None and ds is not None:
            had = getattr(getattr(getattr(ds, "settings", None), "distribution", None),
                          "min_submitted", None)  # fmt: skip
        if had is not None and had != need:
            raise ConfigError(
                f"review.min_submitted: the Argilla dataset {self.dataset_name} was made for "
                f"{had} reviewer(s) a pair and the config now asks {need}; restore it, or "
                "send the next pairs to a new dataset (review.dataset)"
            )

    def update_settings(
        self, guidelines: str, ds: Any | None = None, min_submitted: int | None = None
    ) -> list[str]:
        """Bring an existing dataset up to date: the guidelines (edited since it was
        created) and the responses shown as plain text. Returns what changed. ``ds``: the
        dataset, when the caller has just found it. ``min_submitted``: the reviewers a
        record needs now; another number than the dataset's is refused (ConfigError):
        Argilla completes a record at the dataset's number, so a raised one stranded every
        new pair after its first verdict, and changing the dataset's would reopen pairs
        already decided and delivered."""
        ds = self.dataset() if ds is None else ds
        http = self.client.api.http_client
        changed: list[str] = []

        def patch(path: str, body: dict[str, Any]) -> None:
            def go() -> None:
                http.patch(path, json=body).raise_for_status()

            self._call(go)

        current = self._get(http, f"/api/v1/datasets/{ds.id}")
        # Argilla stores a new dataset's guidelines without their last line break
        if (current.get("guidelines") or "").rstrip() != guidelines.rstrip():
            patch(f"/api/v1/datasets/{ds.id}", {"guidelines": guidelines})
            changed.append("guidelines")
        if min_submitted is not None:
            self.check_reviewers(
                (current.get("distribution") or {}).get("min_submitted"), min_submitted
            )
        plain = {name for name, _ in FIELDS}
        for field in self._get(http, f"/api/v1/datasets/{ds.id}/fields")["items"]:
            settings = field.get("settings") or {}
            if field["name"] in plain and settings.get("use_markdown"):
                patch(
                    f"/api/v1/fields/{field['id']}",
                    {"settings": {"type": "text", "use_markdown": False}},
                )
                changed.append(f"{field['name']} as plain text")
        return changed

    def push(
        self, records: Iterable[ReviewRecord], batch: int = 256
    ) -> Iterator[list[ReviewRecord]]:
        """Upsert records (id = pair id, so pushing twice never duplicates), a batch at a
        time, reading ``records`` no further than the batch being sent; yields each batch
        once Argilla has stored it."""
        ds = self.dataset()
        rg = self.rg
        rest = iter(records)
        while chunk := list(itertools.islice(rest, batch)):
            items = [
                rg.Record(
                    id=r.pair_id,
                    fields={
                        "prompt": shown(r.prompt),
                        "response_a": shown(r.first),
                        "response_b": shown(r.second),
                    }
                    | ({HINT_FIELD: shown(r.hint)} if r.hint else {}),
                    metadata={"round": r.round_id},
                )
                for r in chunk
            ]

            def log(items: list[Any] = items) -> None:
                ds.records.log(items, batch_size=batch)

            self._call(log)
            yield chunk

    def pull(self, ds: Any | None = None) -> list[HumanResponse]:
        """Every response of every record (owner/admin key needed). Read through the HTTP
        API rather than SDK objects: SDK 2.8.0 crashes on a discarded response without
        values. Records Argilla counts as complete without a submitted response (their
        reviewer's account was deleted, and its answers with it) are kept in
        ``self.stranded`` (pair id -> record id), and the pair of every record in
        ``self.present`` (``self.complete``: the listing saw as many as Argilla counts).
        ``ds``: the dataset, when the caller has just found it."""
        ds = self.dataset() if ds is None else ds
        http = self.client.api.http_client
        users = {u["id"]: u["username"] for u in self._get(http, "/api/v1/users")["items"]}
        out: list[HumanResponse] = []
        self.stranded: dict[str, str] = {}
        self.present: set[str] = set()  # the pair id of every record
        self.complete = False
        offset = 0
        while True:
            page = self._get(
                http,
                f"/api/v1/datasets/{ds.id}/records",
                {"include": "responses", "offset": offset, "limit": PAGE},
            )
            for record in page["items"]:
                self.present.add(record["external_id"])
                given = record.get("responses") or []
                if record.get("status") == "completed" and not any(
                    r.get("status") == "submitted" for r in given
                ):
                    self.stranded[record["external_id"]] = str(record["id"])
                for resp in given:
                    values = resp.get("values") or {}
                    out.append(
                        HumanResponse(
                            pair_id=record["external_id"],
                            reviewer=users.get(resp["user_id"], resp["user_id"]),
                            status=resp["status"],
                            label=(values.get(QUESTION) or {}).get("value"),
                            reason=(values.get(REASON_QUESTION) or {}).get("value"),
                            inserted_at=resp["inserted_at"],
                            updated_at=resp["updated_at"],
                            response_id=str(resp.get("id", "")),
                            values=values,
                        )
                    )
            offset += len(page["items"])
            if len(page["items"]) < PAGE:
                # every record seen? (its pages have no order: rows moved by reviewers'
                # answers in a remote Argilla's database can be skipped, others seen twice)
                self.complete = len(self.present) >= int(page.get("total") or 0)
                return out

    def reviewers(self) -> list[dict[str, Any]]:
        """The annotator accounts of the workspace: username, role, id."""
        http = self.client.api.http_client
        ws = self._workspace()
        members = self._get(http, f"/api/v1/workspaces/{ws.id}/users")["items"]
        return [
            {"username": u["username"], "role": u["role"], "id": str(u["id"])}
            for u in members
            if u["role"] == "annotator"
        ]

    def _annotator(self, username: str) -> Any:
        user = self._call(lambda: self.client.users(username))
        if user is None:
            raise ReviewError(f"no Argilla account named '{username}' at {self.shown}")
        if user.role != "annotator":
            raise ReviewError(
                f"'{username}' is an Argilla {getattr(user.role, 'value', user.role)}, not a "
                "reviewer account; "
                "labeler only manages annotators"
            )
        return user

    def remove_reviewer(self, username: str) -> bool:
        """Take an annotator out of the workspace (their submitted answers stay, in Argilla
        and in labeler's state; the account can no longer open the dataset). False when it
        was not in the workspace."""
        user = self._annotator(username)
        ws = self._workspace()
        members = {u.username for u in self._call(lambda: list(ws.users))}
        if username not in members:
            return False
        self._call(lambda: ws.remove_user(user))
        return True

    def reset_password(self, username: str, password: str) -> None:
        """Give an annotator a new password (the old one stops working)."""
        user = self._annotator(username)
        http = self.client.api.http_client

        def go() -> None:
            reply = http.patch(f"/api/v1/users/{user.id}", json={"password": password})
            reply.raise_for_status()

        self._call(go)

    def hold(self, response: HumanResponse) -> None:
        """Turn one submitted response back into a draft with the same answer, so its
        record needs one more submission and returns to every other reviewer's queue
        (Argilla counts submissions per dataset only; this reopens one record). labeler
        keeps counting the held vote."""
        http = self.client.api.http_client

        def go() -> None:
            reply = http.put(
                f"/api/v1/responses/{response.response_id}",
                json={"status": "draft", "values": response.values or {}},
            )
            reply.raise_for_status()

        self._call(go)

    def _get(self, http: Any, path: str, params: dict[str, Any] | None = None) -> Any:
        def go() -> Any:
            response = http.get(path, params=params)
            response.raise_for_status()
            return response.json()

        return self._call(go)

    def reopen(self, record_ids: list[str]) -> None:
        """Delete records so that pushing their pairs again creates them afresh, open to
        every reviewer (Argilla 2.8 keeps a record "completed" when the responses that
        completed it are deleted with their user, and never reopens it)."""
        http = self.client.api.http_client
        for record_id in record_ids:

            def go(record_id: str = record_id) -> None:
                http.delete(f"/api/v1/records/{record_id}").raise_for_status()

            self._call(go)

    def delete_dataset(self) -> None:
        ds = self.find_dataset()
        if ds is not None:
            self._call(ds.delete)

    # -- reviewers -------------------------------------------------------------------------

    def add_reviewer(self, username: str, password: str) -> bool:
        """Create an annotator (unless it exists) and add it to the workspace; True when
        the account was created."""
        rg = self.rg
        ws = self._workspace()
        user = self._call(lambda: self.client.users(username))
        created = user is None
        if not created:
            user = self._annotator(username)  # an owner or admin is not made a reviewer
        if created:
            user = self._call(
                lambda: rg.User(
                    username=username, password=password, role="annotator", client=self.client
                ).create()
            )
        members = {u.username for u in self._call(lambda: list(ws.users))}
        if username not in members:
            self._call(lambda: ws.add_user(user))
        return created
