"""A search engine for argilla-server that answers from Argilla's own SQL tables.

argilla-server asks a ``SearchEngine`` (normally Elasticsearch or OpenSearch) to list and
filter records, count progress and compute metadata metrics. The server commits records,
responses and suggestions to its SQL database before it calls the index hooks, so this
engine can leave every index hook empty and answer each question with a query over the
``records``, ``responses``, ``suggestions`` and ``questions`` tables (SQLite JSON
functions through SQLAlchemy's JSON operators).

Semantics follow ``argilla_server/search_engine/commons.py`` (the Elasticsearch engine):

* a terms filter on *response status* with ``pending`` means "no response by this user"
  (or no response at all without a user), OR-ed with the other statuses;
* response and suggestion filters match when *some* response / suggestion matches;
* with a ``user_id`` and no explicit sort, records come in a stable pseudo-random order
  per user (a hash of user and record), so two reviewers do not start on the same records;
* a text query matches records whose field text contains every word (case-insensitive).

Registered as ``labeler-sql``; select it with ``ARGILLA_SEARCH_ENGINE=labeler-sql``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from argilla_server.enums import MetadataPropertyType, ResponseStatusFilter, SortOrder
from argilla_server.errors.future import UnprocessableEntityError
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Question,
    Record,
    Response,
    Suggestion,
    User,
)
from argilla_server.search_engine.base import (
    AndFilter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)
from sqlalchemy import Text, and_, cast, exists, false, func, or_, select, true
from sqlalchemy.sql import ColumnElement

ENGINE_NAME = "labeler-sql"
_RECORD_COLUMNS = {
    "id": Record.id,
    "external_id": Record.external_id,
    "inserted_at": Record.inserted_at,
    "updated_at": Record.updated_at,
    "status": Record.status,
}


def _session() -> Any:
    from argilla_server.database import AsyncSessionLocal

    return AsyncSessionLocal()


def _user_order(user_id: Any, record_id: Any) -> bytes:
    return hashlib.sha256(f"{user_id}:{record_id}".encode()).digest()


def _as_datetime(value: float | None) -> datetime | None:
    # Elasticsearch reads numbers on date fields as epoch milliseconds
    return None if value is None else datetime.utcfromtimestamp(value / 1000)


def _range(column: Any, ge: Any, le: Any) -> ColumnElement[bool]:
    clauses = []
    if ge is not None:
        clauses.append(column >= ge)
    if le is not None:
        clauses.append(column <= le)
    return and_(true(), *clauses)


def _path(*keys: str) -> str:
    return "$" + "".join(f'."{k}"' for k in keys)


def _jx(column: Any, path: str) -> Any:
    """The SQL value at ``path`` in a JSON column (numbers stay numbers)."""
    return func.json_extract(column, path)


def _json_terms(column: Any, path: str, values: list[str]) -> ColumnElement[bool]:
    """The JSON value at ``path`` is one of ``values``, or a list holding one of them
    (json_each over a scalar yields the scalar itself)."""
    element = func.json_each(column, path).table_valued("value").alias()
    return exists(select(1).select_from(element).where(element.c.value.in_(values)))


class SQLSearchEngine(SearchEngine):
    """See the module docstring."""

    @classmethod
    async def new_instance(cls) -> SQLSearchEngine:
        return cls()

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        async with _session() as db:
            return (await db.execute(select(1))).scalar() == 1

    async def info(self) -> dict[str, Any]:
        return {"engine": ENGINE_NAME, "backend": "argilla-server SQL tables"}

    # -- index hooks: the SQL tables are the index -----------------------------------------

    async def create_index(self, dataset: Dataset) -> None:
        return None

    async def delete_index(self, dataset: Dataset) -> None:
        return None

    async def configure_metadata_property(
        self, dataset: Dataset, metadata_property: MetadataProperty
    ) -> None:
        return None

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        return None

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        return None

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        return None

    async def update_record_response(self, response: Response) -> None:
        return None

    async def delete_record_response(self, response: Response) -> None:
        return None

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        return None

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        return None

    # -- progress and metrics --------------------------------------------------------------

    async def get_dataset_progress(self, dataset: Dataset) -> dict[str, int]:
        if dataset.is_draft:
            return {}
        async with _session() as db:
            rows = (
                await db.execute(
                    select(Record.status, func.count())
                    .where(Record.dataset_id == dataset.id)
                    .group_by(Record.status)
                )
            ).all()
        counts = {str(getattr(status, "value", status)): n for status, n in rows}
        return {"total": sum(counts.values()), **counts}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict[str, int]:
        if dataset.is_draft:
            return {}
        async with _session() as db:
            rows = (
                await db.execute(
                    select(Response.status, func.count())
                    .join(Record, Record.id == Response.record_id)
                    .where(Record.dataset_id == dataset.id, Response.user_id == user.id)
                    .group_by(Response.status)
                )
            ).all()
        counts = {str(getattr(status, "value", status)): n for status, n in rows}
        return {"total": sum(counts.values()), **counts}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        path = _path(metadata_property.name)
        column = _jx(Record.metadata_, path)
        kind = func.json_type(Record.metadata_, path)
        where = (
            Record.dataset_id == metadata_property.dataset_id,
            kind.is_not(None),
            kind != "null",
        )
        async with _session() as db:
            if metadata_property.type == MetadataPropertyType.terms:
                values = (await db.execute(select(column).where(*where))).scalars().all()
                counts: dict[str, int] = {}
                for value in values:
                    # json_extract returns a list as its JSON text
                    terms = json.loads(value) if str(value).startswith("[") else [value]
                    for term in terms:
                        counts[str(term)] = counts.get(str(term), 0) + 1
                ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                return TermsMetrics(
                    total=sum(counts.values()),
                    values=[TermsMetrics.TermCount(term=t, count=n) for t, n in ordered],
                )
            low, high = (
                await db.execute(select(func.min(column), func.max(column)).where(*where))
            ).one()
        if metadata_property.type == MetadataPropertyType.integer:
            return IntegerMetadataMetrics(
                min=None if low is None else int(low), max=None if high is None else int(high)
            )
        return FloatMetadataMetrics(min=low, max=high)

    # -- search ----------------------------------------------------------------------------

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Any = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: Any = None,
    ) -> SearchResponses:
        async with _session() as db:
            questions = {
                q.name: q.id
                for q in (
                    await db.execute(select(Question).where(Question.dataset_id == dataset.id))
                ).scalars()
            }
            conditions = [Record.dataset_id == dataset.id, self._text(query)]
            if filter is not None:
                conditions.append(self._filter(filter, questions))
            where = and_(*conditions)
            total = (
                await db.execute(select(func.count()).select_from(Record).where(where))
            ).scalar_one()
            if sort:
                stmt = (
                    select(Record.id)
                    .where(where)
                    .order_by(*self._order(sort, questions), Record.id)
                    .offset(offset)
                    .limit(limit)
                )
                ids = list((await db.execute(stmt)).scalars())
            elif user_id is not None:
                every = list((await db.execute(select(Record.id).where(where))).scalars())
                every.sort(key=lambda rid: _user_order(user_id, rid))
                ids = every[offset : offset + limit]
            else:
                stmt = (
                    select(Record.id)
                    .where(where)
                    .order_by(Record.inserted_at, Record.id)
                    .offset(offset)
                    .limit(limit)
                )
                ids = list((await db.execute(stmt)).scalars())
        return SearchResponses(
            items=[SearchResponseItem(record_id=i, score=1.0) for i in ids], total=total
        )

    async def similarity_search(self, *args: Any, **kwargs: Any) -> SearchResponses:
        raise UnprocessableEntityError(
            "similarity search needs a vector index; labeler's embedded Argilla has none"
        )

    # -- query building --------------------------------------------------------------------

    @staticmethod
    def _text(query: TextQuery | str | None) -> ColumnElement[bool]:
        if query is None:
            return true()
        text = TextQuery(q=query) if isinstance(query, str) else query
        words = [w for w in str(text.q).split() if w not in ("*", "")]
        target = Record.fields[text.field].as_string() if text.field else cast(Record.fields, Text)
        return and_(true(), *(func.lower(target).contains(w.lower()) for w in words))

    def _filter(self, f: Any, questions: dict[str, Any]) -> ColumnElement[bool]:
        if isinstance(f, AndFilter):
            return and_(true(), *(self._filter(x, questions) for x in f.filters))
        scope = f.scope
        if isinstance(scope, RecordFilterScope):
            return self._record_filter(f, scope.property)
        if isinstance(scope, MetadataFilterScope):
            path = _path(scope.metadata_property)
            if isinstance(f, TermsFilter):
                return _json_terms(Record.metadata_, path, [str(v) for v in f.values])
            return _range(_jx(Record.metadata_, path), f.ge, f.le)
        if isinstance(scope, SuggestionFilterScope):
            return self._suggestion_filter(f, scope, questions)
        if isinstance(scope, ResponseFilterScope):
            return self._response_filter(f, scope)
        raise UnprocessableEntityError(f"cannot filter on {scope}")

    @staticmethod
    def _record_filter(f: Any, prop: str) -> ColumnElement[bool]:
        column = _RECORD_COLUMNS[str(prop)]
        if isinstance(f, TermsFilter):
            return column.in_([str(v) for v in f.values])
        if str(prop) in ("inserted_at", "updated_at"):
            return _range(column, _as_datetime(f.ge), _as_datetime(f.le))
        return _range(column, f.ge, f.le)

    @staticmethod
    def _suggestion_filter(
        f: Any, scope: SuggestionFilterScope, questions: dict[str, Any]
    ) -> ColumnElement[bool]:
        question_id = questions.get(scope.question)
        if question_id is None:
            return false()
        prop = str(scope.property or "value")
        if prop == "value":
            match = (
                _json_terms(Suggestion.value, "$", [str(v) for v in f.values])
                if isinstance(f, TermsFilter)
                else _range(_jx(Suggestion.value, "$"), f.ge, f.le)
            )
        elif prop == "score":
            match = (
                _range(_jx(Suggestion.score, "$"), f.ge, f.le)
                if isinstance(f, RangeFilter)
                else _json_terms(Suggestion.score, "$", [str(v) for v in f.values])
            )
        else:
            column = Suggestion.agent if prop == "agent" else Suggestion.type
            match = (
                column.in_([str(v) for v in f.values])
                if isinstance(f, TermsFilter)
                else _range(column, f.ge, f.le)
            )
        return exists(
            select(1).where(
                Suggestion.record_id == Record.id, Suggestion.question_id == question_id, match
            )
        )

    @staticmethod
    def _response_filter(f: Any, scope: ResponseFilterScope) -> ColumnElement[bool]:
        by_user = [Response.user_id == scope.user.id] if scope.user is not None else []
        if scope.question:
            path = _path(scope.question, "value")
            match = (
                _json_terms(Response.values, path, [str(v) for v in f.values])
                if isinstance(f, TermsFilter)
                else _range(_jx(Response.values, path), f.ge, f.le)
            )
            return exists(select(1).where(Response.record_id == Record.id, *by_user, match))
        if str(scope.property) != "status" or not isinstance(f, TermsFilter):
            raise UnprocessableEntityError(f"cannot filter responses on {scope}")
        statuses = [str(v) for v in f.values]
        parts = []
        if ResponseStatusFilter.pending.value in statuses:
            parts.append(~exists(select(1).where(Response.record_id == Record.id, *by_user)))
        others = [s for s in statuses if s != ResponseStatusFilter.pending.value]
        if others:
            parts.append(
                exists(
                    select(1).where(
                        Response.record_id == Record.id, *by_user, Response.status.in_(others)
                    )
                )
            )
        return or_(false(), *parts)

    @staticmethod
    def _order(sort: list[Order], questions: dict[str, Any]) -> list[Any]:
        out = []
        for order in sort:
            scope = order.scope
            if isinstance(scope, RecordFilterScope):
                key: Any = _RECORD_COLUMNS[str(scope.property)]
            elif isinstance(scope, MetadataFilterScope):
                key = _jx(Record.metadata_, _path(scope.metadata_property))
            elif isinstance(scope, SuggestionFilterScope):
                prop = str(scope.property or "value")
                column = {
                    "value": _jx(Suggestion.value, "$"),
                    "score": _jx(Suggestion.score, "$"),
                    "agent": Suggestion.agent,
                    "type": Suggestion.type,
                }[prop]
                key = (
                    select(column)
                    .where(
                        Suggestion.record_id == Record.id,
                        Suggestion.question_id == questions.get(scope.question),
                    )
                    .limit(1)
                    .scalar_subquery()
                )
            elif isinstance(scope, ResponseFilterScope):
                by_user = [Response.user_id == scope.user.id] if scope.user is not None else []
                column = (
                    _jx(Response.values, _path(scope.question, "value"))
                    if scope.question
                    else Response.status
                )
                key = (
                    select(func.avg(column) if scope.question else func.min(column))
                    .where(Response.record_id == Record.id, *by_user)
                    .scalar_subquery()
                )
            else:
                raise UnprocessableEntityError(f"cannot sort on {scope}")
            out.append(key.desc() if order.order == SortOrder.desc else key.asc())
        return out


SearchEngine.register(engine_name=ENGINE_NAME)(SQLSearchEngine)
