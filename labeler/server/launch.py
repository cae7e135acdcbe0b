"""Child-process entry points of the embedded Argilla: the web server and the rq worker.

Run by ``labeler.server.manager`` (never by hand) as ``python -m labeler.server.launch
server HOST PORT SECRETS`` or ``... worker``, with the ARGILLA_* environment already set:
argilla-server reads its settings once, at import time.

``server`` migrates the database with Argilla's own alembic scripts, makes sure the owner
account and the workspace exist (created from Python: the server's own CLI breaks with
click >= 8.2), registers the SQL search engine, and serves the FastAPI app with uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any


def _migrate() -> None:
    from alembic import command
    from alembic.config import Config
    from argilla_server.database import ALEMBIC_CONFIG_FILE

    logging.getLogger("alembic").setLevel(logging.WARNING)
    command.upgrade(Config(ALEMBIC_CONFIG_FILE), "head")


def _use_wal(database_url: str) -> None:
    # The server and the worker write from separate connections: WAL lets readers and a
    # writer work at once instead of failing with "database is locked".
    path = database_url.split(":///", 1)[1].split("?", 1)[0]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")


async def _ensure_accounts(secrets: dict[str, Any]) -> None:
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import User, UserRole, Workspace, WorkspaceUser

    async with AsyncSessionLocal() as db:
        workspace = await Workspace.get_by(db, name=secrets["workspace"])
        if workspace is None:
            workspace = await accounts.create_workspace(db, {"name": secrets["workspace"]})
        owner = await User.get_by(db, username=secrets["owner_username"])
        if owner is None:
            owner = await User.create(
                db,
                first_name="labeler owner",
                username=secrets["owner_username"],
                role=UserRole.owner,
                api_key=secrets["owner_api_key"],
                password_hash=accounts.hash_password(secrets["owner_password"]),
            )
        if await WorkspaceUser.get_by(db, workspace_id=workspace.id, user_id=owner.id) is None:
            await WorkspaceUser.create(db, workspace_id=workspace.id, user_id=owner.id)


def serve(host: str, port: int, secrets_path: str) -> None:
    import os

    import uvicorn

    import labeler.server.engine  # noqa: F401  (registers the search engine)

    secrets = json.loads(Path(secrets_path).read_text())
    _migrate()
    _use_wal(os.environ["ARGILLA_DATABASE_URL"])
    asyncio.run(_ensure_accounts(secrets))
    from argilla_server._app import app

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def work() -> None:
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import SimpleWorker

    import labeler.server.engine  # noqa: F401  (jobs may use the search engine)

    worker = SimpleWorker([HIGH_QUEUE, DEFAULT_QUEUE], connection=REDIS_CONNECTION)
    worker.work(with_scheduler=False, logging_level="WARNING")


def main(argv: list[str]) -> None:
    if argv[:1] == ["server"] and len(argv) == 4:
        serve(argv[1], int(argv[2]), argv[3])
    elif argv[:1] == ["worker"]:
        work()
    else:
        sys.exit("usage: python -m labeler.server.launch server HOST PORT SECRETS | worker")


if __name__ == "__main__":
    main(sys.argv[1:])
