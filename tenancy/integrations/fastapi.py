"""FastAPI: a tenant session per request from its ``Authorization`` header, and Wix webhooks.

>>> from tenancy.integrations.fastapi import TenancyFastAPI
>>> tenancy_app = TenancyFastAPI()                      # Settings.from_env() at startup
>>> app = FastAPI(lifespan=tenancy_app.lifespan)        # engines + Wix client up and down
>>> Db = Annotated[Session, Depends(tenancy_app.session)]
>>> @app.get("/notes")
... def list_notes(db: Db) -> list[str]:
...     return list(db.scalars(select(Note.title)))     # this installation's notes only
>>> tenancy_app.add_webhook_route(app, "/webhooks/wix")

A refused token answers ``401 {"detail": "invalid token"}`` with ``WWW-Authenticate: Bearer``;
Wix unreachable or rate limiting answers ``503 {"detail": ...}`` with ``Retry-After`` (the
same JSON as :class:`~tenancy.integrations.flask.FlaskTenancy`). The session is closed when
the handler returns, rolled back if it raised, and committed only if the handler commits.
``TenancyFastAPI(asyncio=True)`` adds :meth:`TenancyFastAPI.async_session` (an
``AsyncSession``; needs ``wix-tenancy[async]``).
Needs ``pip install 'wix-tenancy[fastapi]'``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

from tenancy.errors import ConfigurationError

try:
    from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
except ImportError:  # pragma: no cover - exercised in a subprocess without FastAPI
    raise ConfigurationError(
        "tenancy.integrations.fastapi needs FastAPI: pip install 'wix-tenancy[fastapi]'"
    ) from None

from tenancy import log_context
from tenancy.errors import InvalidWebhook, TenancyError
from tenancy.integrations.runtime import (
    DEFAULT_RETRY_AFTER,
    MAX_WEBHOOK_BYTES,
    EventHook,
    Runtime,
    announced_too_large,
    error_body,
    receive_webhook,
    refusal,
)
from tenancy.orm.sessions import INFO_KEY, TenantSession
from tenancy.settings import Settings

if TYPE_CHECKING:  # the asyncio extension needs greenlet (wix-tenancy[async]); sync apps run without it
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["TenancyFastAPI"]

log = logging.getLogger("tenancy.web")


async def _request_log_scope() -> None:
    # Runs in the request's own task: the slot it opens is shared with the worker threads
    # that run sync dependencies and handlers (they get copies of this context), so the
    # tenant bound while opening the session shows on the handler's log records. Not a
    # generator (those cost an exit stack per request): the slot dies with the request's task.
    log_context.new_scope()


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or ``None`` once it is known to exceed ``MAX_WEBHOOK_BYTES`` (nothing more read)."""
    if announced_too_large(request.headers.get("content-length")):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class TenancyFastAPI:
    """tenancy for one FastAPI app: lifespan, session dependencies and the webhook route.

    *settings* defaults to :meth:`tenancy.Settings.from_env` at startup. ``engine_options``
    go to ``create_engine`` (pool sizes), ``wix_options`` to :class:`~tenancy.WixClient`
    (requests retry Wix once, briefly, by default). ``retry_after`` is the ``Retry-After``
    of 503 answers, in seconds.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        asyncio: bool = False,
        engine_options: Mapping[str, Any] | None = None,
        wix_options: Mapping[str, Any] | None = None,
        retry_after: int = DEFAULT_RETRY_AFTER,
    ) -> None:
        self._settings = settings
        self._asyncio = asyncio
        self._engine_options = engine_options
        self._wix_options = wix_options
        self.retry_after = retry_after
        self._runtime: Runtime | None = None
        self._webhook_paths: list[str] = []

    def __repr__(self) -> str:
        return f"<TenancyFastAPI started={self._runtime is not None} asyncio={self._asyncio}>"

    # --- startup and shutdown -----------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """Engines, Wix client and session factories (between startup and shutdown)."""
        if self._runtime is None:
            raise ConfigurationError(
                "tenancy is not started: pass FastAPI(lifespan=tenancy_app.lifespan), "
                "or enter tenancy_app.lifespan(app) in your own lifespan"
            )
        return self._runtime

    def start(self) -> Runtime:
        """Build the engines and the Wix client (the lifespan does this for you)."""
        if self._runtime is None:
            self._runtime = Runtime.start(
                self._settings or Settings.from_env(),
                asyncio=self._asyncio,
                engine_options=self._engine_options,
                wix_options=self._wix_options,
            )
            if self._webhook_paths and self._runtime.verifier is None:
                # Fail at startup, not on Wix's first webhook: a route that can only answer 500.
                runtime, self._runtime = self._runtime, None
                runtime.close()
                raise ConfigurationError(
                    f"the webhook route {self._webhook_paths[0]} needs WIX_WEBHOOK_PUBLIC_KEY "
                    "(Settings.wix_webhook_public_key): the app's public key from the Wix dev center"
                )
        return self._runtime

    async def stop(self) -> None:
        """Dispose of the engines and close the Wix client."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.aclose()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """``FastAPI(lifespan=tenancy_app.lifespan)``, or ``async with`` it inside your own."""
        self.start()
        try:
            yield
        finally:
            await self.stop()

    # --- dependencies -------------------------------------------------------------------

    def _refuse(self, exc: TenancyError) -> NoReturn:
        answer = refusal(exc, retry_after=self.retry_after)
        if answer is None:
            raise exc
        # HTTPException answers {"detail": ...}: error_body(), as on Flask.
        raise HTTPException(answer.status, answer.detail, headers=dict(answer.headers)) from None

    def session(
        self,
        authorization: Annotated[str | None, Header()] = None,
        _log: Annotated[None, Depends(_request_log_scope)] = None,
    ) -> Iterator[TenantSession]:
        """Dependency: the request's tenant session (``Depends(tenancy_app.session)``)."""
        try:
            session = self.runtime.sessions.for_token(authorization or "")
        except TenancyError as exc:
            self._refuse(exc)
        log_context.bind(session.tenant_id)
        try:
            yield session
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    async def async_session(
        self, authorization: Annotated[str | None, Header()] = None
    ) -> AsyncIterator[AsyncSession]:
        """Dependency: the request's tenant ``AsyncSession`` (needs ``TenancyFastAPI(asyncio=True)``)."""
        factory = self.runtime.async_sessions
        if factory is None:
            raise ConfigurationError("async_session needs TenancyFastAPI(asyncio=True)")
        try:
            session = await factory.for_token(authorization or "")
        except TenancyError as exc:
            self._refuse(exc)
        with log_context.bound(session.info[INFO_KEY]):
            try:
                yield session
            except Exception:
                await session.rollback()
                raise
            finally:
                await session.close()

    # --- webhooks -----------------------------------------------------------------------

    def add_webhook_route(
        self, app: FastAPI | APIRouter, path: str = "/webhooks/wix", *, on_event: EventHook | None = None
    ) -> None:
        """POST *path*: verify Wix's signed body and apply the event to ``tenants``.

        200 ``{"action": ...}`` when applied (``refresh``, ``removed``, ``ignored`` or
        ``stale``); 401 ``{"detail": "invalid webhook"}`` for a body that does not verify
        (nothing changes); 413 for a body over ``MAX_WEBHOOK_BYTES`` (256 KB), refused from its
        ``Content-Length`` before reading, or once a chunked body passes the bound.
        ``on_event(event, action)`` runs after the update, for your own reactions.
        """

        async def wix_webhook(request: Request) -> JSONResponse:
            body = await _bounded_body(request)
            if body is None:
                return JSONResponse(
                    error_body("webhook body is too large"), status_code=413, headers={"Connection": "close"}
                )
            try:
                action = await run_in_threadpool(receive_webhook, self.runtime, body, on_event)
            except InvalidWebhook as exc:
                log.info("webhook refused with 401: %s", exc)
                return JSONResponse(error_body("invalid webhook"), status_code=401)
            return JSONResponse({"action": action})

        app.add_api_route(path, wix_webhook, methods=["POST"], include_in_schema=False)
        self._webhook_paths.append(path)
