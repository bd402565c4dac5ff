"""Hot-path statements compiled once per dialect and run on the driver's own cursor.

SQLAlchemy's ``Connection.execute`` spends about 30 µs of Python on every statement, even a
constant one whose compiled form is cached (an execution context, a cursor result, events);
one issuance runs about 40 statements, so that alone was some 1.5 ms of the server's 8 ms of
CPU per certificate. A :class:`Prepared` statement keeps the SQL written in SQLAlchemy Core
(one definition, compiled by each dialect) but compiles it once per dialect and shape, and
runs it on the DB-API connection SQLAlchemy has checked out, inside the same transaction:
about 6 µs. Values go through the column types' own bind and result processors, so rows read
back exactly as through ``Connection.execute`` (aware UTC datetimes, JSON, booleans), and a
driver error goes through SQLAlchemy's own handling (its ``handle_error`` events, disconnect
detection and invalidation, the ``IntegrityError``/``OperationalError`` wrappers), so callers
and :class:`~acmefleet.store.engine.Database` see what they saw before.

Not for: expanding ``IN`` parameters, statements whose columns have Python-side defaults
(both refused when the plan is made), or anything off the request path, where clarity wins
and ``Connection.execute`` stays.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Insert
from sqlalchemy.sql.expression import ClauseElement

_Processor = Callable[[Any], Any] | None
_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Plan:
    """One statement compiled for one dialect and one set of parameter names."""

    sql: str
    names: tuple[str, ...]  # the bind parameters, in the order the driver takes them
    driver_names: tuple[str, ...]  # their names in the SQL text (escaped if need be)
    defaults: tuple[object, ...]  # a literal's own value, or _REQUIRED
    binders: tuple[_Processor, ...]
    positional: bool
    row: type[tuple[Any, ...]] | None  # None: the statement returns no rows
    readers: tuple[_Processor, ...]


class Prepared:
    """A constant Core statement with the fast execution path described above."""

    __slots__ = ("_plans", "_statement")

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row, each with its columns as attributes (``row.id``)."""
        return self._execute(conn, params or {}, fetch=True)[0]

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any | None:
        """The first row, or None."""
        found = self.rows(conn, params)
        return found[0] if found else None

    def scalar(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any | None:
        """The first column of the first row, or None."""
        found = self.rows(conn, params)
        return found[0][0] if found else None

    def scalar_one(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, which must be there."""
        found = self.rows(conn, params)
        if not found:
            raise LookupError("the statement returned no row")
        return found[0][0]

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; the number of rows it touched."""
        return self._execute(conn, params or {}, fetch=False)[1]

    def run_many(self, conn: Connection, params: Iterable[Mapping[str, Any]]) -> None:
        """Run it once per mapping of ``params`` (all with the same names)."""
        for one in params:
            self._execute(conn, one, fetch=False)

    def _plan(self, dialect: Dialect, names: frozenset[str]) -> _Plan:
        key = (dialect.name, names)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _compile(self._statement, dialect, names)
        return plan

    def _execute(
        self, conn: Connection, params: Mapping[str, Any], *, fetch: bool
    ) -> tuple[list[Any], int]:
        dialect = conn.dialect
        plan = self._plan(dialect, frozenset(params))
        values = []
        for name, default, binder in zip(plan.names, plan.defaults, plan.binders, strict=True):
            value = params[name] if default is _REQUIRED else params.get(name, default)
            values.append(value if binder is None else binder(value))
        args: Any = values if plan.positional else dict(zip(plan.driver_names, values, strict=True))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(plan.sql, args)
            fetched = cursor.fetchall() if plan.row is not None else []
            count = cursor.rowcount
        except Exception as error:
            # SQLAlchemy's own path: events, disconnect invalidation, the exception wrappers.
            conn._handle_dbapi_exception(error, plan.sql, args, cursor, None)
        finally:
            cursor.close()
        if not fetch or plan.row is None:
            return [], count
        make, readers = plan.row, plan.readers
        return [
            make(*[v if r is None else r(v) for v, r in zip(row, readers, strict=True)])
            for row in fetched
        ], count


def _compile(statement: ClauseElement, dialect: Dialect, names: frozenset[str]) -> _Plan:
    # An INSERT without .values() takes its columns from the parameters' names.
    keys = sorted(names) if isinstance(statement, Insert) else None
    compiled: Any = statement.compile(dialect=dialect, column_keys=keys)
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError("Prepared statements cannot apply Python-side column defaults")
    positional = bool(dialect.positional)
    order = tuple(compiled.positiontup) if positional else tuple(compiled.binds)
    escaped = compiled.escaped_bind_names or {}
    binds = [compiled.binds[name] for name in order]
    if any(bind.expanding for bind in binds):
        raise ValueError("Prepared statements cannot take expanding (IN list) parameters")
    defaults = tuple(
        _REQUIRED if bind.key in names or bind.required else bind.effective_value for bind in binds
    )
    columns = compiled._result_columns
    # rename: a column without a usable name (``count(*)``) is still reachable by position.
    fields = [str(c.keyname) for c in columns]
    row = namedtuple("Row", fields, rename=True) if columns else None
    return _Plan(
        sql=compiled.string,
        names=order,
        driver_names=tuple(escaped.get(name, name) for name in order),
        defaults=defaults,
        binders=tuple(bind.type._cached_bind_processor(dialect) for bind in binds),
        positional=positional,
        row=row,
        readers=tuple(c.type._cached_result_processor(dialect, None) for c in columns),
    )
