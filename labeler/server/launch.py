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

    _own_responses_only(app)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _routes(app: Any) -> Any:
    """Every route of an app and of the apps mounted in it."""
    for route in getattr(app, "routes", []):
        yield route
        inner = getattr(route, "app", None)
        if inner is not None and inner is not app:
            yield from _routes(inner)


def _own_responses_only(app: Any) -> None:
    """Annotators see only their own responses: argilla-server's ``GET /api/v1/records/{id}``
    returns every reviewer's answer to any workspace member, so a reviewer could read
    another's verdict before giving theirs (independent second opinions, issue 18/19).
    The route's endpoint is wrapped (FastAPI calls ``dependant.call`` at request time):
    for users who are neither owner nor admin, the record is serialised with their own
    responses only. The ORM record is never modified. Fails loudly when the route is not
    where argilla-server 2.8 puts it."""
    from argilla_server.api.schemas.v1.records import Record as RecordSchema
    from fastapi.routing import APIRoute

    found = [
        r
        for r in _routes(app)
        if isinstance(r, APIRoute)
        and r.path == "/records/{record_id}"
        and "GET" in r.methods
        and getattr(r.endpoint, "__name__", "") == "get_record"
    ]
    if len(found) != 1:
        raise RuntimeError("argilla-server's GET /api/v1/records/{id} route was not found")
    route = found[0]
    original: Any = route.dependant.call

    async def own_only(*args: Any, **kwargs: Any) -> Any:
        record = await original(*args, **kwargs)
        user = kwargs.get("current_user")
        if user is None or user.is_owner or user.is_admin:
            return record
        shown = RecordSchema.model_validate(record)
        if shown.responses is not None:
            shown.responses = [r for r in shown.responses if r.user_id == user.id]
        return shown

    route.dependant.call = own_only


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
