"""A reviewer decides a pair in Argilla's real web UI, in headless Debian chromium."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labeler.demo.judge_server import Scripted
from labeler.store import Store
from tests.browser import Browser, chromium_available
from tests.conftest import Project, good_bad_rows

pytestmark = pytest.mark.slow

GUIDELINE_MARK = "Weigh the criteria below in this order"


@pytest.fixture
def browser(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (see scripts/dev)")
        pytest.skip("Debian chromium/chromedriver not installed (scripts/dev test installs them)")
    b = Browser(tmp_path / "profile")
    yield b
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"screenshot of the failure: {b.screenshot(tmp_path / 'failure.png')}")
    b.close()


def submitted_count(b: Browser) -> int:
    """The 'Submitted N' counter in the UI's footer."""
    tail = b.text().rsplit("Submitted", 1)[1].split()
    return int(tail[0]) if tail and tail[0].isdigit() else -1


def unsure_judge(p: Project, judge_server: Any) -> None:
    """The judge says A with low confidence: every pair goes to review."""
    p.set(
        judge={
            "base_url": judge_server(
                lambda s: Scripted("A LOW\nunsure", {"A": 0.55, "B": 0.45})
            ).url
        }
    )


def open_the_dataset_as_a_reviewer(p: Project, b: Browser, name: str) -> None:
    """A new reviewer account logs in to the web UI and opens the project's dataset."""
    added = p.run("reviewers", "add", name)
    secret = added.stdout.split("password (shown once): ")[1].split()[0]
    login(b, p.argilla.url, name, secret)  # type: ignore[attr-defined]
    dataset = p.config.read_text().split('name = "', 1)[1].split('"', 1)[0]
    b.click_text(".dataset-card", dataset)


def test_reviewer_decides_a_pair_in_the_web_ui(
    review_project: Project, judge_server, browser: Browser
) -> None:
    p = review_project
    unsure_judge(p, judge_server)
    p.pairs(good_bad_rows(1))
    assert p.run_json("round")["review_pushed"] == 1
    b = browser
    open_the_dataset_as_a_reviewer(p, b, "ui-person")
    b.wait_text("question 0?")
    page = b.text()
    assert "answer 0 is good" in page and "answer 0 is poor" in page
    b.click_text("button.panel__header", "guidelines")
    b.wait_text(GUIDELINE_MARK)
    good_first = page.index("answer 0 is good") < page.index("answer 0 is poor")
    b.click(b.wait("label[for=preference_A]" if good_first else "label[for=preference_B]"))
    b.click_text("button", "Submit")
    deadline = time.time() + 15
    while submitted_count(b) != 1 and time.time() < deadline:
        time.sleep(0.2)
    assert submitted_count(b) == 1, "the UI did not count the submission"
    data = p.run_json("sync")
    assert data["newly_decided"] == 1 and data["decided"] == {"A": 1}
    with Store(p.root / ".labeler" / "state.sqlite") as store:
        row = store.db.execute("SELECT reviewer, label FROM human_responses").fetchone()
    assert tuple(row) == ("ui-person", "A")


def login(b: Browser, url: str, name: str, secret: str) -> None:
    b.go(url)
    b.type(b.wait("input[name=Username]"), name)
    b.type(b.wait("input[name=Password]"), secret)
    b.click(b.wait("button[type=submit]"))


def test_reviewers_see_the_text_the_judge_saw_and_the_current_guidelines(
    review_project: Project, judge_server, browser: Browser
) -> None:
    """Issue 11: Markdown rendering hid `<details>` contents and turned `2*3*4 = 26` into
    `234 = 26`; guidelines edited after the dataset was created never reached reviewers,
    and the guidelines panel kept the files' hard line breaks."""
    p = review_project
    unsure_judge(p, judge_server)
    tricky = {
        "prompt": "What is 2*3*4?",
        "response_a": "2*3*4 = 26 and _that_ is final",
        "response_b": "<details><summary>Answer</summary>the hidden part says 24</details>\n"
        "a second line & more",
    }
    p.pairs([tricky])
    assert p.run_json("round")["review_pushed"] == 1
    # the guidelines change after the dataset exists: sync brings them, and says so
    extra = p.root / "guidelines" / "03-new.md"
    extra.write_text("# New rule\n\nCheck every product\nby hand before you choose.\n")
    synced = p.run_json("sync")
    assert "guidelines" in synced["settings_updated"]
    assert p.run_json("sync")["settings_updated"] == []  # once
    b = browser
    open_the_dataset_as_a_reviewer(p, b, "ui-text")
    b.wait_text("What is 2*3*4?")
    page = b.text()
    assert "2*3*4 = 26 and _that_ is final" in page  # nothing eaten by Markdown
    assert "<details><summary>Answer</summary>the hidden part says 24</details>" in page
    assert "</details>\na second line & more" in page  # line breaks and & kept
    b.click_text("button.panel__header", "guidelines")
    b.wait_text("Check every product")
    assert "Check every product by hand before you choose." in b.text()  # no hard break


def test_a_reviewer_answers_with_the_keyboard_and_keeps_the_reason(
    review_project: Project, judge_server, browser: Browser
) -> None:
    """Issue 20: in Argilla's form a number key picks the label and moves the cursor to
    "Why?" without opening it, so a reason typed next went nowhere. The keys the
    guidelines panel and the question's title give (``sync.KEYBOARD``) keep it: Tab, the
    number, Shift+Enter, the reason, Esc, Enter. Without a reason, Tab, the number, Enter."""
    p = review_project
    unsure_judge(p, judge_server)
    p.pairs(good_bad_rows(3))
    assert p.run_json("round")["review_pushed"] == 3
    b = browser
    open_the_dataset_as_a_reviewer(p, b, "ui-keys")
    b.wait_text("question")
    assert "Shift+Enter to write, Esc, then Enter submits" in b.text()
    b.click_text("button.panel__header", "guidelines")
    b.wait_text("Answering with the keyboard")
    assert "Text typed without Shift+Enter first goes nowhere" in b.text()
    b.click_text("button.panel__header", "guidelines")  # closed again
    flows = [
        (["Tab", "1", "Shift+Enter"], "the first one answers", ["Escape", "Enter"]),
        (["Tab", "2"], "", ["Enter"]),
        (["Tab", "1", "Shift+Enter"], "it is correct", ["Escape", "Control+Enter"]),
    ]
    for done, (before, text, after) in enumerate(flows, 1):
        time.sleep(1.5)  # the next record is shown
        b.keys(*before)
        b.write(text)
        for key in after:
            time.sleep(0.3)
            b.keys(key)
        deadline = time.time() + 15
        while submitted_count(b) != done and time.time() < deadline:
            time.sleep(0.2)
        assert submitted_count(b) == done, f"answer {done} was not submitted"
    assert p.run_json("sync")["newly_decided"] == 3
    with Store(p.root / ".labeler" / "state.sqlite") as store:
        rows = store.db.execute(
            "SELECT reviewer, label, reason FROM human_responses ORDER BY updated_at"
        ).fetchall()
    reasons = sorted((r["label"], r["reason"] or "") for r in rows)
    assert reasons == [("A", "it is correct"), ("A", "the first one answers"), ("B", "")]
