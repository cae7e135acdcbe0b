"""The SQL search engine behind the embedded Argilla: every filter and sort the web UI and
the SDK use, checked through the server's HTTP API against counts computed here."""

from __future__ import annotations

import json
import random
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any

import argilla as rg
import pytest

from labeler.demo.reviewers import ReviewerSession

N = 40
COLORS = ["red", "green", "blue"]


def owner_call(server: Any, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "X-Argilla-Api-Key": server.credentials().api_key,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


class World:
    """A dataset with known metadata, suggestions and responses from two reviewers."""

    def __init__(self, server: Any):
        self.server = server
        rng = random.Random(5)
        self.rows = []
        for i in range(N):
            color: Any = rng.choice(COLORS) if i % 5 else [rng.choice(COLORS), "black"]
            self.rows.append(
                {
                    "i": i,
                    "color": color,
                    "n": rng.randint(0, 9),
                    "x": round(rng.random(), 3),
                    "sugg": rng.choice(["yes", "no"]),
                    "score": round(rng.random(), 3),
                    "agent": rng.choice(["judge-1", "judge-2"]),
                    "text": f"record {i} " + ("apple pie" if i % 4 == 0 else "bread"),
                }
            )
        self.client = rg.Argilla(api_url=server.url, api_key=server.credentials().api_key)
        settings = rg.Settings(
            fields=[rg.TextField(name="text")],
            questions=[rg.LabelQuestion(name="q", labels=["yes", "no"])],
            metadata=[
                rg.TermsMetadataProperty(name="color"),
                rg.IntegerMetadataProperty(name="n"),
                rg.FloatMetadataProperty(name="x"),
            ],
            distribution=rg.TaskDistribution(min_submitted=1),
        )
        self.ds = rg.Dataset(
            name="engine-world", workspace="labeler", settings=settings, client=self.client
        ).create()
        self.ds.records.log(
            [
                rg.Record(
                    id=f"r{r['i']}",
                    fields={"text": r["text"]},
                    metadata={"color": r["color"], "n": r["n"], "x": r["x"]},
                    suggestions=[
                        rg.Suggestion(
                            question_name="q", value=r["sugg"], score=r["score"], agent=r["agent"]
                        )
                    ],
                )
                for r in self.rows
            ]
        )
        self.id = str(self.ds.id)
        self.users = {}
        for name in ("eng-u1", "eng-u2"):
            with warnings.catch_warnings():  # the SDK warns when a lookup finds nothing
                warnings.simplefilter("ignore", UserWarning)
                found = self.client.users(name)
            user = (
                found
                or rg.User(
                    username=name, password="password-123", role="annotator", client=self.client
                ).create()
            )
            ws = self.client.workspaces("labeler")
            if name not in {u.username for u in ws.users}:
                ws.add_user(user)
            self.users[name] = ReviewerSession(server.url, name, "password-123")
        self.ids = {
            r["external_id"]: r["id"]
            for r in owner_call(server, "GET", f"/api/v1/datasets/{self.id}/records?limit=1000")[
                "items"
            ]
        }
        # u1 answers records 0-19 (yes when i is even; 15-19 discarded); u2 answers 10-14
        self.u1: dict[int, str] = {}
        for i in range(20):
            rid = self.ids[f"r{i}"]
            if i >= 15:
                self.users["eng-u1"].discard(rid)
                self.u1[i] = "discarded"
            else:
                self.users["eng-u1"].submit(rid, "yes" if i % 2 == 0 else "no", question="q")
                self.u1[i] = "submitted"
        for i in range(10, 15):
            self.users["eng-u2"].submit(self.ids[f"r{i}"], "no", question="q")

    def search(
        self, body: dict[str, Any], user: str | None = None, limit: int = 1000
    ) -> tuple[int, list[str]]:
        path = f"/api/v1/datasets/{self.id}/records/search?limit={limit}"
        if user:
            result = self.users[user].call("POST", path.replace("/api/v1/", "/api/v1/me/"), body)
        else:
            result = owner_call(self.server, "POST", path, body)
        back = {v: k for k, v in self.ids.items()}
        return result["total"], [back[item["record"]["id"]] for item in result["items"]]


@pytest.fixture(scope="module")
def world(argilla: Any) -> Iterator[World]:
    w = World(argilla)
    yield w
    w.ds.delete()
    w.client.http_client.close()


def terms(entity: str, values: list[str], **scope: Any) -> dict[str, Any]:
    return {"type": "terms", "scope": {"entity": entity, **scope}, "values": values}


def range_(entity: str, ge: Any = None, le: Any = None, **scope: Any) -> dict[str, Any]:
    f: dict[str, Any] = {"type": "range", "scope": {"entity": entity, **scope}}
    if ge is not None:
        f["ge"] = ge
    if le is not None:
        f["le"] = le
    return f


def where(*filters: dict[str, Any]) -> dict[str, Any]:
    return {"filters": {"and": list(filters)}}


def colors_of(row: dict[str, Any]) -> list[str]:
    return row["color"] if isinstance(row["color"], list) else [row["color"]]


@pytest.mark.parametrize(
    ("name", "body", "expect"),
    [
        (
            "metadata terms, lists included",
            where(terms("metadata", ["red"], metadata_property="color")),
            lambda r: "red" in colors_of(r),
        ),
        (
            "metadata terms, several values",
            where(terms("metadata", ["black", "blue"], metadata_property="color")),
            lambda r: bool({"black", "blue"} & set(colors_of(r))),
        ),
        (
            "metadata integer range",
            where(range_("metadata", 3, 6, metadata_property="n")),
            lambda r: 3 <= r["n"] <= 6,
        ),
        (
            "metadata float range, open top",
            where(range_("metadata", ge=0.5, metadata_property="x")),
            lambda r: r["x"] >= 0.5,
        ),
        (
            "suggestion value",
            where(terms("suggestion", ["yes"], question="q", property="value")),
            lambda r: r["sugg"] == "yes",
        ),
        (
            "suggestion score",
            where(range_("suggestion", 0.2, 0.7, question="q", property="score")),
            lambda r: 0.2 <= r["score"] <= 0.7,
        ),
        (
            "suggestion agent",
            where(terms("suggestion", ["judge-2"], question="q", property="agent")),
            lambda r: r["agent"] == "judge-2",
        ),
        (
            "record status completed",
            where(terms("record", ["completed"], property="status")),
            lambda r: r["i"] < 15,
        ),
        (
            "record id",
            where(terms("record", ["r3"], property="external_id")),
            lambda r: r["i"] == 3,
        ),
        (
            "response value (any user)",
            where(terms("response", ["yes"], question="q")),
            lambda r: r["i"] < 15 and r["i"] % 2 == 0,
        ),
        (
            "response status submitted (any user)",
            where(terms("response", ["submitted"], property="status")),
            lambda r: r["i"] < 15,
        ),
        (
            "response status pending (no response at all)",
            where(terms("response", ["pending"], property="status")),
            lambda r: r["i"] >= 20,
        ),
        (
            "response status discarded or pending",
            where(terms("response", ["discarded", "pending"], property="status")),
            lambda r: r["i"] >= 15,
        ),
        (
            "two filters together",
            where(
                terms("suggestion", ["no"], question="q", property="value"),
                range_("metadata", le=4, metadata_property="n"),
            ),
            lambda r: r["sugg"] == "no" and r["n"] <= 4,
        ),
    ],
)
def test_filters_as_owner(world: World, name: str, body: dict[str, Any], expect: Any) -> None:
    total, ids = world.search(body)
    wanted = {f"r{r['i']}" for r in world.rows if expect(r)}
    assert total == len(wanted), name
    assert set(ids) == wanted, name


def test_text_query(world: World) -> None:
    total, ids = world.search({"query": {"text": {"q": "APPLE pie"}}})
    assert set(ids) == {f"r{i}" for i in range(0, N, 4)} and total == N // 4
    total, _ = world.search({"query": {"text": {"q": "apple bread"}}})
    assert total == 0  # every word must match
    total, _ = world.search({"query": {"text": {"q": "bread", "field": "text"}}})
    assert total == N - N // 4


def test_per_user_pending_is_what_the_ui_lists(world: World) -> None:
    ui = where(
        terms("response", ["pending"], property="status"),
        terms("record", ["pending"], property="status"),
    )
    total, ids = world.search(ui, user="eng-u1")
    # u1 answered 0-19; 15-19 were discarded (their records stay pending but not for u1)
    assert total == N - 20 and set(ids) == {f"r{i}" for i in range(20, N)}
    total2, ids2 = world.search(ui, user="eng-u2")
    # u2 answered 10-14 (completed); records 0-9 completed by u1
    assert total2 == N - 15 and set(ids2) == {f"r{i}" for i in range(15, N)}
    # the same reviewer always sees the same order; two reviewers see different orders
    assert world.search(ui, user="eng-u2")[1] == ids2
    common = [i for i in ids2 if i in set(ids)]
    assert [i for i in ids if i in set(common)] != common
    mine = where(terms("response", ["submitted"], property="status"))
    assert world.search(mine, user="eng-u2")[0] == 5
    mine_yes = where(terms("response", ["yes"], question="q"))
    assert world.search(mine_yes, user="eng-u2")[0] == 0
    assert world.search(mine_yes, user="eng-u1")[0] == 8


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        ({"entity": "metadata", "metadata_property": "n"}, lambda r: (r["n"],)),
        ({"entity": "metadata", "metadata_property": "x"}, lambda r: (r["x"],)),
        ({"entity": "suggestion", "question": "q", "property": "score"}, lambda r: (r["score"],)),
    ],
)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting(world: World, scope: dict[str, Any], key: Any, order: str) -> None:
    _, ids = world.search({"sort": [{"scope": scope, "order": order}]})
    got = [key(world.rows[int(i[1:])]) for i in ids]
    assert got == sorted(got, reverse=order == "desc")
    assert len(ids) == N


def test_paging(world: World) -> None:
    everything = world.search(
        {"sort": [{"scope": {"entity": "record", "property": "inserted_at"}, "order": "asc"}]}
    )[1]
    pages = []
    for offset in range(0, N, 7):
        path = f"/api/v1/datasets/{world.id}/records/search?limit=7&offset={offset}"
        body = {
            "sort": [{"scope": {"entity": "record", "property": "inserted_at"}, "order": "asc"}]
        }
        pages += [
            item["record"]["id"] for item in owner_call(world.server, "POST", path, body)["items"]
        ]
    assert [world.ids[i] for i in everything] == pages


def test_progress_and_metrics(world: World) -> None:
    progress = owner_call(world.server, "GET", f"/api/v1/datasets/{world.id}/progress")
    assert (progress["total"], progress["completed"], progress["pending"]) == (N, 15, N - 15)
    me = world.users["eng-u1"].progress(world.id)["responses"]
    assert (me["submitted"], me["discarded"], me["pending"]) == (15, 5, N - 20)
    props = {
        p["name"]: p["id"]
        for p in owner_call(
            world.server, "GET", f"/api/v1/me/datasets/{world.id}/metadata-properties"
        )["items"]
    }
    n = owner_call(world.server, "GET", f"/api/v1/metadata-properties/{props['n']}/metrics")
    assert (n["min"], n["max"]) == (
        min(r["n"] for r in world.rows),
        max(r["n"] for r in world.rows),
    )
    c = owner_call(world.server, "GET", f"/api/v1/metadata-properties/{props['color']}/metrics")
    expected: dict[str, int] = {}
    for r in world.rows:
        for color in colors_of(r):
            expected[color] = expected.get(color, 0) + 1
    assert {v["term"]: v["count"] for v in c["values"]} == expected
    assert c["total"] == sum(expected.values())
