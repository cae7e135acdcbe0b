"""A full disk: one line naming the path and "no space left", exit 1, nothing half-written,
the round resumable once space is freed; temp files of a killed run are swept.

The full disk is a real one: a small tmpfs mounted in a private mount namespace
(``unshare -r -m``, no root needed), so the labeler command under test meets ENOSPC from
the kernel exactly as on a full volume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project

HEX = 1500  # random bytes per response, written as hex: incompressible text


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not namespaces_work(), reason="needs unprivileged mount namespaces (unshare -r -m)"
)


def big_rows(n: int) -> list[dict[str, str]]:
    return [
        {
            "prompt": f"question {i}? " + os.urandom(100).hex(),
            "response_a": f"answer {i} is good " + os.urandom(HEX).hex(),
            "response_b": f"answer {i} is poor " + os.urandom(HEX).hex(),
        }
        for i in range(n)
    ]


def on_small_disk(project: Project, mount: Path, size: str, *steps: list[str]) -> list[dict]:
    """Run labeler commands in one mount namespace where ``mount`` is a tmpfs of ``size``;
    a step ``["grow"]`` enlarges it (space freed), ``["ls"]`` lists it into left.txt.
    Returns each command's rc/out/err."""
    mount.mkdir(parents=True, exist_ok=True)
    script = [f"mount -t tmpfs -o size={size} tmpfs {mount}"]
    outs = []
    for n, step in enumerate(steps):
        if step == ["grow"]:
            script.append(f"mount -o remount,size=64m tmpfs {mount}")
            continue
        if step == ["ls"]:  # what is left on the small disk
            script.append(f"ls -A {mount} > {mount.parent / 'left.txt'}")
            continue
        cmd = " ".join([sys.executable, "-m", "labeler", "--config", str(project.config), *step])
        out, err = mount.parent / f"step{n}.out", mount.parent / f"step{n}.err"
        script.append(f"{cmd} >{out} 2>{err}; echo $? >{out}.rc")
        outs.append((out, err))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELER_")}
    done = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", " && ".join(script[:1]) + "; " + "; ".join(script[1:])],
        cwd=project.root,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [
        {
            "rc": int(Path(f"{o}.rc").read_text()),
            "out": o.read_text(),
            "err": e.read_text(),
        }
        for o, e in outs
    ]


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(
    project: Project, tmp_path: Path
) -> None:
    """Issue 10: pyarrow aborted the process (exit 134) and left a half-written .tmp."""
    project.pairs(big_rows(60))
    assert project.run("round").exit_code == 0
    mount = tmp_path / "small"
    out = mount / "prefs.parquet"
    [export] = on_small_disk(
        project, mount, "200k", ["export", "--to", "parquet", "--out", str(out)], ["ls"]
    )
    assert export["rc"] == 1, export
    assert export["err"].strip().splitlines() == [
        f"error: {out}: no space left on device; free some space and run the command "
        "again (nothing was half-written)"
    ]
    assert "Traceback" not in export["err"]
    assert (tmp_path / "left.txt").read_text() == ""  # no half-written file, no temp file


def test_a_full_disk_under_the_state_stops_the_round_and_it_resumes(
    project: Project, tmp_path: Path
) -> None:
    mount = tmp_path / "small"
    project.set(project={"state_dir": str(mount / ".labeler")})
    project.pairs(big_rows(40))
    first, listing, second = on_small_disk(
        project,
        mount,
        "256k",
        ["round"],
        ["status", "--json"],
        ["grow"],
        ["round", "--json"],
    )
    assert first["rc"] == 1, first
    lines = first["err"].strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], first["err"]
    assert str(mount / ".labeler") in lines[0]
    assert "Traceback" not in first["err"]
    assert listing["rc"] == 0, listing
    assert second["rc"] == 0, second
    data = json.loads(second["out"])
    assert data["status"] == "completed" and data["judged"] + data.get("unjudged", 0) >= 40


def test_a_full_disk_while_writing_the_dataset_is_one_line_and_the_next_round_writes_it(
    project: Project, tmp_path: Path
) -> None:
    """The dataset is rewritten at the end of every round: when its disk fills up
    mid-write it is one line naming the dataset, the judging is kept, nothing half
    written is left there, and the next round (space freed) writes it whole."""
    mount = tmp_path / "small"
    mount.mkdir()
    # every judge label in the dataset, certified or not: 40 rows of ~6 KB
    project.set(output={"dataset_dir": str(mount / "dataset"), "certified_only": False})
    project.pairs(big_rows(40))
    first, second = on_small_disk(
        project, mount, "160k", ["round"], ["ls"], ["grow"], ["round", "--json"]
    )
    assert first["rc"] == 1, first
    lines = first["err"].strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], first["err"]
    assert str(mount / "dataset") in lines[0] and "Traceback" not in first["err"]
    left = (tmp_path / "left.txt").read_text().split()
    assert left in ([".dataset.versions"], []), left  # no link to a half dataset
    assert second["rc"] == 0, second
    again = json.loads(second["out"])
    assert again["resumed"] and again["requests_sent"] == 0  # (judged once)
    assert again["dataset_rows"] == 40


def test_temp_files_of_a_killed_run_are_swept(project: Project, tmp_path: Path) -> None:
    """kill -9 during an export or a dataset write leaves dot-named temp files behind."""
    project.pairs(big_rows(3))
    out = tmp_path / "out" / "prefs.parquet"
    out.parent.mkdir()
    stale_export = [out.parent / ".prefs.parquet.tmp-deadbeef", out.parent / ".prefs.parquet.old-1"]
    stale_export[0].write_bytes(b"half")
    stale_export[1].mkdir()
    state = project.root / ".labeler"
    state.mkdir()
    stale_state = [state / ".dataset.parquet.tmp", state / ".dataset.link-0badf00d"]
    stale_state[0].write_bytes(b"half")
    stale_state[1].symlink_to(state / "nowhere")
    assert project.run("round").exit_code == 0
    assert project.run("export", "--to", "parquet", "--out", str(out)).exit_code == 0
    assert not any(p.exists() or p.is_symlink() for p in stale_export + stale_state)
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "prefs.parquet",
        "prefs.parquet.README.md",
    ]


def test_a_full_disk_while_writing_a_batch_is_one_line_and_the_batch_resumes(
    project: Project, tmp_path: Path
) -> None:
    """`labeler round --batch` writes its request files under the state folder; a full
    disk there stops the round in one line, leaves no partial file, sends nothing, and
    once space is freed the next run writes, submits and later collects the batch."""
    server = project.server  # type: ignore[attr-defined]
    project.pairs(big_rows(40))
    mount = project.root / ".labeler" / "batches"
    first, second = on_small_disk(
        project,
        mount,
        "128k",
        ["round", "--batch"],
        ["ls"],
        ["grow"],
        ["round", "--batch", "--json"],
    )
    assert first["rc"] == 1, first
    lines = first["err"].strip().splitlines()
    assert lines == [
        f"error: {mount}: no space left on device; free some space and run the command "
        "again (nothing was half-written)"
    ]
    assert (mount.parent / "left.txt").read_text() == ""  # no partial file left
    assert second["rc"] == 0, second
    assert json.loads(second["out"])["status"] == "batch_waiting"
    assert server.batch_api.created == 1 and not server.requests
    done = project.run_json("round")
    assert done["status"] == "completed" and done["judged"] == 40
    assert set(server.batch_api.billed.values()) == {1}


def test_a_killed_exports_temp_files_are_swept_wherever_the_project_exported(
    project: Project, tmp_path: Path
) -> None:
    """Issue 19: a temp file left by a killed export to one path is swept by the next
    export to *another* path of the same project (the project remembers its targets),
    once its writer is gone; a temp file whose writer is alive is left alone."""
    import subprocess
    import sys

    project.pairs(big_rows(3))
    assert project.run("round").exit_code == 0
    first = tmp_path / "a" / "prefs.jsonl"
    first.parent.mkdir()
    assert project.run("export", "--to", "jsonl", "--out", str(first)).exit_code == 0
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    killed = first.parent / f".prefs.jsonl.tmp-p{dead}-0badf00d"
    killed.write_text("half an export")
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = first.parent / f".prefs.jsonl.tmp-p{living.pid}-c0ffee00"
        busy.write_text("being written")
        other = tmp_path / "b" / "kto.jsonl"
        other.parent.mkdir()
        out = project.run("export", "--format", "kto", "--to", "jsonl", "--out", str(other))
        assert out.exit_code == 0, out.output
        assert not killed.exists()
        assert busy.exists()
    finally:
        living.kill()
        living.wait()
