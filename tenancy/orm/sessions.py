"""Tenant-scoped sessions: one tenant per session, fixed at creation, enforced twice.

>>> sessions = TenantSessionFactory(engine, admin_engine=admin)
>>> with sessions.for_instance(instance_id) as session:
...     session.add(Note(title="hi"))  # instance_id stamped
...     session.commit()

The ORM layer lives in :mod:`tenancy.orm.guard`; the database layer is PostgreSQL row-level
security (:mod:`tenancy.postgres.isolation`), fed by a sealed, transaction-local binding
(:mod:`tenancy.postgres.binding`) applied at the start of every transaction of the session.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

import psycopg
from psycopg import pq
from sqlalchemy import Connection, Engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapper, Session, SessionTransaction
from sqlalchemy.pool import Pool

from tenancy import log_context
from tenancy.errors import ConfigurationError, CrossTenantAccess, CrossTenantWrite
from tenancy.instance_ids import parse_instance_id
from tenancy.orm import guard
from tenancy.orm.translate import install_error_translation
from tenancy.postgres import citus_binding, psycopg_begin
from tenancy.postgres.binding import (
    BIND_RESET_SQL,
    BIND_SQL,
    RESET_SQL,
    TAINTED,
    BindingKey,
    KeySource,
    bind_parameters,
    newest_key,
    parse_binding_key,
    planted_message,
    session_state,
)
from tenancy.postgres.isolation import has_citus, warn_without_rls
from tenancy.settings import safe_url
from tenancy.tenants.registration import TenantRegistry

__all__ = [
    "INFO_KEY",
    "InstanceResolver",
    "TenantSession",
    "TenantSessionFactory",
    "check_runtime_role",
]

INFO_KEY = "tenancy.instance_id"

log = logging.getLogger("tenancy.sessions")
admin_log = logging.getLogger("tenancy.admin")

_E = TypeVar("_E")  # an Engine or an AsyncEngine

# is_local=true: the binding dies with the transaction (commit, rollback, connection reuse).
# Used where the binding cannot ride with BEGIN (other drivers, savepoints, joined transactions).
_BIND_TENANT = text(BIND_SQL.replace("$1", ":instance_id").replace("$2", ":seal").replace("$3", ":backend"))
# The same, resetting the session first (a transaction the session began: see _reset_session).
_RESET_AND_BIND_TENANT = text(
    BIND_RESET_SQL.replace("$1", ":instance_id").replace("$2", ":seal").replace("$3", ":backend")
)


class InstanceResolver(Protocol):
    """What :meth:`TenantSessionFactory.for_token` needs: ``resolve(token).instance_id``."""

    def resolve(self, token: str) -> Any:  # returns tenancy.TokenInfo
        """Return the token's info (with a UUID ``instance_id``) or raise InvalidToken."""
        ...


class TenantSession(Session):
    """A :class:`~sqlalchemy.orm.Session` that can only read and write one tenant's rows.

    Build it through :class:`TenantSessionFactory`. ``tenant_id`` (also
    ``info["tenancy.instance_id"]``) is fixed for the session's life.
    """

    def __init__(
        self,
        bind: Engine | Connection,
        *,
        instance_id: uuid.UUID,
        binding_keys: KeySource | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(bind=bind, **kw)
        self._tenancy_instance_id = instance_id
        self._tenancy_keys = binding_keys or KeySource(None, None)
        self.info[INFO_KEY] = instance_id

    @property
    def tenant_id(self) -> uuid.UUID:
        """The tenant (app instance id) this session is bound to."""
        return self._tenancy_instance_id

    def __repr__(self) -> str:
        return f"<TenantSession instance_id={self._tenancy_instance_id}>"

    def __enter__(self) -> Self:
        # Log records emitted inside `with session:` carry the tenant (tenancy.log_instance_ids).
        self._tenancy_log_restore = log_context.push(self._tenancy_instance_id)
        return self

    def __exit__(self, type_: Any, value: Any, traceback: Any) -> None:
        try:
            super().__exit__(type_, value, traceback)
        finally:
            restore = self.__dict__.pop("_tenancy_log_restore", None)
            if restore is not None:
                restore()

    def add_all(self, instances: Iterable[object]) -> None:
        """Add objects all-or-nothing: one of another tenant rejects the whole batch."""
        batch = list(instances)
        for obj in batch:
            if _is_transient(obj):
                guard.check_new_object(self._tenancy_instance_id, obj)
        super().add_all(batch)

    def bulk_save_objects(self, objects: Iterable[object], *args: Any, **kw: Any) -> None:
        """Like :meth:`Session.bulk_save_objects`, after checking every object's tenant."""
        batch = list(objects)
        for obj in batch:
            guard.check_new_object(self._tenancy_instance_id, obj)
        super().bulk_save_objects(batch, *args, **kw)

    def bulk_insert_mappings(
        self, mapper: type[Any] | Mapper[Any], mappings: Iterable[dict[str, Any]], *args: Any, **kw: Any
    ) -> None:
        """Like :meth:`Session.bulk_insert_mappings`; rows are stamped or the batch refused."""
        rows = guard.check_mappings(self._tenancy_instance_id, mappings, "bulk_insert_mappings")
        super().bulk_insert_mappings(mapper, rows, *args, **kw)

    def bulk_update_mappings(
        self, mapper: type[Any] | Mapper[Any], mappings: Iterable[dict[str, Any]]
    ) -> None:
        """Like :meth:`Session.bulk_update_mappings`; every row must name this tenant."""
        rows = list(mappings)
        for row in rows:
            if guard.as_uuid(row.get("instance_id")) != self._tenancy_instance_id:
                raise CrossTenantWrite(
                    "bulk_update_mappings row does not name this tenant's instance_id; nothing was written"
                )
        super().bulk_update_mappings(mapper, rows)


def _is_transient(obj: object) -> bool:
    state = inspect(obj, raiseerr=False)
    return state is not None and getattr(state, "transient", False)


def _apply_tenant_setting(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    tenant: uuid.UUID = session._tenancy_instance_id  # type: ignore[attr-defined]
    if session.info.get(INFO_KEY) != tenant:
        # Someone rewrote session.info: a session's tenant never changes.
        raise CrossTenantAccess(
            "session.info['tenancy.instance_id'] was changed; a session's tenant is fixed"
        )
    if connection.dialect.name != "postgresql":
        return
    driver = connection.connection.driver_connection
    if getattr(driver, "autocommit", False):
        # SET LOCAL would last one statement: statements would run unscoped.
        raise ConfigurationError("tenant sessions need transactions; the connection is in AUTOCOMMIT mode")
    keys: KeySource = session._tenancy_keys  # type: ignore[attr-defined]
    gpid = _citus_gpid(connection)
    if gpid is not None:
        _apply_citus_binding(connection, keys, tenant, gpid)
        return
    seal = keys.seal(tenant)  # no key: ConfigurationError before anything runs
    # On psycopg the binding rides with BEGIN (no round trip of its own).
    armed = psycopg_begin.arm(driver, tenant, seal)

    def statements(fresh: bool) -> object:
        instance_id, tenant_seal = bind_parameters(tenant, seal)
        params = {"instance_id": instance_id, "seal": tenant_seal, "backend": _checked_backend(connection)}
        return connection.execute(_RESET_AND_BIND_TENANT if fresh else _BIND_TENANT, params).one()[-1]

    _bind(connection, armed, statements)


def _apply_citus_binding(connection: Connection, keys: KeySource, tenant: uuid.UUID, gpid: int) -> None:
    # Citus forwards SET LOCAL to the shards and set_config() not at all; the seal in the SET
    # text is bound to this backend and a few minutes (tenancy/postgres/citus_binding.py).
    driver = connection.connection.driver_connection
    backend = psycopg_begin.checked_backend(driver) or _checked_backend(connection)
    commands = citus_binding.binding_commands(tenant, citus_binding.seal(keys.key(), tenant, gpid), backend)
    armed = psycopg_begin.arm_commands(driver, commands)

    def statements(fresh: bool) -> object:
        if fresh:  # before the SET LOCALs, which RESET ALL would undo
            _reset_session(connection)
        *settings, check = commands
        for command in settings:
            connection.exec_driver_sql(command.decode("ascii"))
        return connection.exec_driver_sql(check.decode("ascii")).scalar_one()

    _bind(connection, armed, statements)


def _bind(connection: Connection, armed: bool, statements: Callable[[bool], object]) -> None:
    """Check the runtime role, then (when the binding could not ride with ``BEGIN``) run the
    binding *statements* (``fresh``: the session began this transaction, reset it first); refuse
    what the session check answers (their last value, :func:`~tenancy.postgres.binding.session_state`).

    Armed, the role check's query (or the session's first statement) opens the transaction
    with the binding, and the fast path refuses the same way (psycopg_begin._start_query).
    """
    fresh = _not_begun(connection)  # before the role check, which may begin the transaction
    _ensure_runtime_role(connection)
    if armed:
        return
    with _binding_statements(connection):
        answer = statements(fresh)
    state = session_state(answer if isinstance(answer, str | bytes) else None, _client_pid(connection))
    if state.planted is not None:
        connection.invalidate()  # its backend may carry the settings: never reuse it
        raise ConfigurationError(planted_message(state.planted))
    if state.tainted:
        connection.invalidate()  # SQL-made prepared statements or LISTEN: never reuse this connection
        raise CrossTenantAccess(TAINTED)
    if fresh:
        # The check ran right after the reset: this backend's role settings are vouched for
        # (binding.CHECK_FUNCTION). In a joined transaction the application's own SETs could
        # hide one, so nothing is kept there.
        connection.connection.info[_BACKEND] = state.backend


def _not_begun(connection: Connection) -> bool:
    """Whether the driver has not begun *connection*'s transaction yet (psycopg; other
    drivers are taken as not begun)."""
    pgconn = getattr(connection.connection.driver_connection, "pgconn", None)
    return pgconn is None or pgconn.transaction_status == pq.TransactionStatus.IDLE


def _reset_session(connection: Connection) -> None:
    """The fallback's reset (:data:`~tenancy.postgres.binding.RESET_SQL`) on Citus, as statements
    before the ``SET LOCAL`` binding; elsewhere the binding statement does it
    (``tenancy.session_state(true)``, :data:`~tenancy.postgres.binding.BIND_RESET_SQL`).

    Only for a transaction the session begins: in a session joined to a transaction the
    application began (or a savepoint), ``RESET ALL`` would undo the application's own
    ``SET LOCAL`` and ``CLOSE ALL`` close its cursors. Unlike the fast path, the reset is part
    of the transaction: that one transaction keeps the isolation level and read-only mode its
    ``BEGIN`` took from ``default_transaction_*`` left on the connection. On psycopg the
    statements go in one simple-protocol query (one round trip).
    """
    if isinstance(connection.connection.driver_connection, psycopg.Connection | psycopg.AsyncConnection):
        connection.exec_driver_sql("; ".join(RESET_SQL))
        return
    for statement in RESET_SQL:
        connection.exec_driver_sql(statement)


@contextlib.contextmanager
def _binding_statements(connection: Connection) -> Iterator[None]:
    """Run the binding's statements unnamed (:func:`_unprepared`); an error names neither them
    nor their parameters (the seal: a broken or killed connection fails right here, and
    applications log errors)."""
    try:
        with _unprepared(connection):
            yield
    except DBAPIError as exc:
        exc.hide_parameters = True
        exc.statement = "<tenancy: the tenant binding>"  # on Citus the seal is in the SQL text
        raise


@contextlib.contextmanager
def _unprepared(connection: Connection) -> Iterator[None]:
    """Run the block's statements unnamed, never as a psycopg prepared statement.

    psycopg prepares a query server-side (``_pg3_N``) after a few runs. SQL in a tenant session
    can ``DEALLOCATE`` such a name and ``PREPARE`` its own statement under it; were the binding
    statement prepared, the next tenant's binding would run that SQL instead, and its "clean"
    answer would be whatever the attacker chose (while it stored the victim's seal). An unnamed
    statement is always the text sent, so its check of ``pg_prepared_statements`` is honest.
    """
    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection | psycopg.AsyncConnection):
        yield  # other drivers are outside the model (README, threat model)
        return
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None  # psycopg then neither prepares nor uses a prepared name
    try:
        yield
    finally:
        driver.prepare_threshold = threshold


_BACKEND = "tenancy.checked_backend"


def _client_pid(connection: Connection) -> int | None:
    """The backend pid the driver's connection got when it connected (libpq's or asyncpg's
    BackendKeyData): behind a pooler it is the pooler's, not the backend's."""
    driver = connection.connection.driver_connection
    pgconn = getattr(driver, "pgconn", None)
    if pgconn is not None:
        pid = pgconn.backend_pid
    else:
        get_pid = getattr(driver, "get_server_pid", None)  # asyncpg
        pid = get_pid() if callable(get_pid) else None
    return pid if isinstance(pid, int) and pid > 0 else None


def _checked_backend(connection: Connection) -> str | None:
    """The backend this DBAPI connection's last fresh tenant transaction found clean of role
    settings (:class:`~tenancy.postgres.binding.SessionState` ``backend``), or None: the check
    then runs in full."""
    backend = connection.connection.info.get(_BACKEND)
    return backend if isinstance(backend, str) else None


# Pools on a database with Citus (True) or without (False), found once per pool.
_citus_pools: weakref.WeakKeyDictionary[Pool, bool] = weakref.WeakKeyDictionary()
_GPID = "tenancy.citus_gpid"


def _citus_gpid(connection: Connection) -> int | None:
    """The Citus global process id of *connection*'s backend; ``None`` without Citus.

    Found once per pool (Citus or not) and once per connection (its gpid), each with a query
    of its own: that transaction gets its binding as separate statements.
    """
    pool = connection.engine.pool
    on_citus = _citus_pools.get(pool)
    if on_citus is None:
        on_citus = _citus_pools[pool] = has_citus(connection)
    if not on_citus:
        return None
    info = connection.connection.info
    gpid = info.get(_GPID)
    if gpid is None:
        gpid = info[_GPID] = int(
            connection.exec_driver_sql("SELECT pg_catalog.citus_backend_gpid()").scalar_one()
        )
    return int(gpid)


# Pools whose role passed check_runtime_role(): a session may reach an engine other than the
# factory's (Session binds=, session.bind = ...), and each must be checked before it serves one.
_checked_pools: weakref.WeakSet[Pool] = weakref.WeakSet()
_checked_lock = threading.Lock()


def _check_engine(engine: Engine) -> None:
    # Eager check before a sync session is handed out: refuse before anything is opened.
    if engine.dialect.name != "postgresql":
        return
    # Pools are only ever added, so a pool already in the set needs no lock (a membership
    # test of a WeakSet is atomic under the GIL); one not in it is checked under the lock.
    if engine.pool in _checked_pools:
        return
    with _checked_lock:
        if engine.pool in _checked_pools:
            return
    with engine.connect() as connection:
        _ensure_runtime_role(connection)
        _citus_pools.setdefault(engine.pool, has_citus(connection))


def _ensure_runtime_role(connection: Connection) -> None:
    pool = connection.engine.pool
    if pool in _checked_pools:  # the common case, without the lock (see _check_engine)
        return
    with _checked_lock:
        if pool in _checked_pools:
            return
    check_runtime_role(connection)
    with _checked_lock:
        _checked_pools.add(pool)


event.listen(TenantSession, "after_begin", _apply_tenant_setting)
event.listen(TenantSession, "do_orm_execute", guard.scope_statement)
event.listen(TenantSession, "before_flush", guard.check_flush)
event.listen(TenantSession, "transient_to_pending", guard.stamp_on_add)
event.listen(TenantSession, "detached_to_persistent", guard.check_attach)


class TenantSessionFactory:
    """Makes tenant sessions on the runtime *engine* and admin sessions on *admin_engine*.

    On PostgreSQL the runtime role is checked once, in the first tenant transaction: a superuser,
    a BYPASSRLS role or the owner of a tenant table raises :class:`~tenancy.ConfigurationError`
    (each would skip row-level security). Any other engine a tenant session reaches (``binds``,
    a reassigned ``session.bind``) is checked the same way before its first transaction. On
    other databases only the ORM layer isolates tenants, and a :class:`~tenancy.TenancyWarning`
    says so.

    On PostgreSQL the database trusts a tenant only with its seal, computed with the binding
    key: *binding_key* (``Settings.binding_key``, ``TENANCY_BINDING_KEY``) or, when not given,
    the newest key read once through *admin_engine*. With neither, tenant sessions raise
    :class:`~tenancy.ConfigurationError`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        resolver: InstanceResolver | None = None,
        admin_engine: Engine | None = None,
        session_options: Mapping[str, Any] | None = None,
        binding_key: str | BindingKey | None = None,
    ) -> None:
        self.engine = engine
        self.admin_engine = admin_engine
        self.resolver = resolver
        self._options = dict(session_options or {})
        self._keys = key_source(binding_key, admin_engine)
        self.registry = TenantRegistry()
        install_error_translation(engine)
        # On PostgreSQL + psycopg the tenant setting rides with BEGIN (tenancy/postgres/psycopg_begin.py).
        psycopg_begin.install(engine)
        warn_without_rls(engine.dialect.name)

    def __repr__(self) -> str:
        return f"<TenantSessionFactory engine={safe_url(self.engine.url)!r}>"

    def for_instance(self, instance_id: uuid.UUID | str) -> TenantSession:
        """A session that only sees and writes *instance_id*'s rows.

        Raises :class:`~tenancy.InvalidInstanceId` for anything that is not a UUID, before
        anything is opened.
        """
        tenant = parse_instance_id(instance_id)
        _check_engine(self.engine)
        if self.engine.dialect.name == "postgresql":
            self._keys.key()  # fail closed, and early, without a binding key
        return self._session(tenant)

    def for_token(self, token: str) -> TenantSession:
        """Resolve a Wix access token (raw or ``Bearer <token>``) and open its tenant's session.

        An instance never seen before is registered in ``tenants`` (status ``active``, due for
        sync); a ``removed`` tenant raises :class:`~tenancy.TenantRemoved` (a token never
        reactivates it). A token that does not resolve raises and opens nothing.
        """
        if self.resolver is None:
            raise ConfigurationError(
                "for_token() needs TenantSessionFactory(..., resolver=TokenResolver(...))"
            )
        info = self.resolver.resolve(token)
        tenant = parse_instance_id(info.instance_id)
        self.registry.ensure(tenant, self._session, site_id=getattr(info, "site_id", None))
        return self._session(tenant)

    def _session(self, tenant: uuid.UUID) -> TenantSession:
        return TenantSession(self.engine, instance_id=tenant, binding_keys=self._keys, **self._options)

    def admin(self, *, reason: str) -> Session:
        """A cross-tenant session on the admin engine, for jobs and support tools; logged.

        *reason* says why (it goes to the ``tenancy.admin`` log). Needs ``admin_engine``.
        """
        engine = open_admin(type(self).__name__, self.admin_engine, reason)
        session = Session(engine, **self._options)
        session.info["tenancy.admin_reason"] = reason
        return session


_ROLE_SQL = text(
    """
    SELECT r.rolname, r.rolsuper, r.rolbypassrls,
           ARRAY(SELECT c.relname::text FROM pg_class c
                 WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p')
                   AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
                 ORDER BY 1) AS owned
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


def key_source(binding_key: str | BindingKey | None, admin_engine: Any) -> KeySource:
    """The factories' :class:`~tenancy.postgres.binding.KeySource`: configured key, else admin engine.

    *admin_engine* may be an ``AsyncEngine``: its ``sync_engine`` is used from inside the
    session's greenlet, where SQLAlchemy runs sync code over the async driver.
    """
    key = parse_binding_key(binding_key) if isinstance(binding_key, str) else binding_key
    if key is not None or admin_engine is None:
        return KeySource(key, None)
    engine: Engine = getattr(admin_engine, "sync_engine", admin_engine)

    def load() -> BindingKey | None:
        if engine.dialect.name != "postgresql":
            return None
        try:
            with engine.connect() as connection:
                return newest_key(connection)
        except DBAPIError as exc:
            # Typically the admin engine is the runtime role (TENANCY_ADMIN_DATABASE_URL unset),
            # which cannot read the keys, or the database is not migrated.
            raise ConfigurationError(
                "could not read the binding key through admin_engine "
                f"({type(exc.orig).__name__ if exc.orig else type(exc).__name__}): connect it as the "
                "owner role (TENANCY_ADMIN_DATABASE_URL) after `alembic upgrade heads`, or set "
                "TENANCY_BINDING_KEY (binding_key=)"
            ) from None

    return KeySource(None, load)


def open_admin(factory: str, admin_engine: _E | None, reason: str) -> _E:
    """Validate an ``admin()`` call and log its reason; returns the admin engine to use."""
    if not reason or not reason.strip():
        raise ConfigurationError("admin() needs a reason")
    if admin_engine is None:
        raise ConfigurationError(f"admin() needs {factory}(..., admin_engine=...)")
    admin_log.info("admin session opened: %s", reason.strip()[:200])
    return admin_engine


def check_runtime_role(connection: Connection) -> None:
    """Raise :class:`~tenancy.ConfigurationError` if the connected role would skip RLS."""
    name, superuser, bypass, owned = connection.execute(_ROLE_SQL).one()
    problems: Sequence[str] = [
        *(["is a superuser"] if superuser else []),
        *(["has BYPASSRLS"] if bypass else []),
        *([f"owns tenant tables ({', '.join(owned)})"] if owned else []),
    ]
    if problems:
        raise ConfigurationError(
            f"the runtime role {name!r} {' and '.join(problems)}: row-level security would not "
            "apply. Connect tenant sessions as a plain role (see `tenancy grant`)."
        )
