"""Flask: an extension giving each request its tenant session, and a Wix webhook view.

>>> from tenancy.integrations.flask import FlaskTenancy
>>> tenancy_ext = FlaskTenancy()
>>> tenancy_ext.init_app(app)                           # Settings.from_env(); POST /webhooks/wix
>>> @app.get("/notes")
... def list_notes():
...     db = tenancy_ext.session                        # opened from Authorization on first use
...     return [n.title for n in db.scalars(select(Note))]

The session is opened on first use in a request and closed at the end of it (rolled back
if the view raised; committed only if the view commits). A refused token is answered
``401 {"detail": "invalid token"}`` with ``WWW-Authenticate: Bearer``; Wix unreachable or
rate limiting ``503 {"detail": ...}`` with ``Retry-After`` — JSON, the same as
:class:`~tenancy.integrations.fastapi.TenancyFastAPI` (raised as werkzeug's ``Unauthorized``
/ ``ServiceUnavailable``, so an app's own ``errorhandler`` still wins). Needs
``pip install 'wix-tenancy[flask]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from tenancy.errors import ConfigurationError

try:
    from flask import Flask, current_app, g, jsonify, request
    from flask.typing import ResponseReturnValue
    from werkzeug.exceptions import HTTPException, ServiceUnavailable, Unauthorized
except ImportError:  # pragma: no cover - exercised in a subprocess without Flask
    raise ConfigurationError(
        "tenancy.integrations.flask needs Flask: pip install 'wix-tenancy[flask]'"
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
from tenancy.orm.sessions import TenantSession
from tenancy.settings import Settings

__all__ = ["FlaskTenancy"]

log = logging.getLogger("tenancy.web")

_EXTENSION = "tenancy"
_SESSION = "_tenancy_session"
_LOG_RESTORE = "_tenancy_log_restore"


_CHUNK = 64 * 1024


def _bounded_body() -> bytes | None:
    """The request body, or ``None`` once it is known to exceed ``MAX_WEBHOOK_BYTES``.

    Refused from ``Content-Length`` before reading; a body without one (chunked) is read in
    chunks and dropped as soon as it passes the bound, so at most the bound is held.
    """
    if announced_too_large(request.content_length):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = request.stream.read(min(_CHUNK, MAX_WEBHOOK_BYTES + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            return None
        chunks.append(chunk)


class FlaskTenancy:
    """The tenancy extension: ``FlaskTenancy(app)`` or ``FlaskTenancy()`` + :meth:`init_app`.

    *settings* defaults to :meth:`tenancy.Settings.from_env` when the app is initialised.
    ``webhook_path`` (``None`` for none) gets the webhook view, which needs
    ``WIX_WEBHOOK_PUBLIC_KEY`` (:meth:`init_app` raises ``ConfigurationError`` without it);
    ``on_event(event, action)``
    runs after an event is applied. ``engine_options``/``wix_options``/``retry_after`` as
    for :class:`tenancy.integrations.fastapi.TenancyFastAPI`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | None = None,
        engine_options: Mapping[str, Any] | None = None,
        wix_options: Mapping[str, Any] | None = None,
        retry_after: int = DEFAULT_RETRY_AFTER,
        webhook_path: str | None = "/webhooks/wix",
        on_event: EventHook | None = None,
    ) -> None:
        self._settings = settings
        self._engine_options = engine_options
        self._wix_options = wix_options
        self.retry_after = retry_after
        self.webhook_path = webhook_path
        self.on_event = on_event
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the engines and Wix client for *app*, close sessions per request, add the webhook.

        Raises :class:`~tenancy.errors.ConfigurationError` (and builds nothing) when the webhook
        view is wanted but the settings have no webhook public key.
        """
        runtime = Runtime.start(
            self._settings or Settings.from_env(),
            engine_options=self._engine_options,
            wix_options=self._wix_options,
        )
        if self.webhook_path is not None and runtime.verifier is None:
            # Fail when the app is built, not on Wix's first webhook: a view that can only 500.
            runtime.close()
            raise ConfigurationError(
                f"the webhook view {self.webhook_path} needs WIX_WEBHOOK_PUBLIC_KEY "
                "(Settings.wix_webhook_public_key): the app's public key from the Wix dev center; "
                "FlaskTenancy(..., webhook_path=None) for an app without the webhook view"
            )
        app.extensions[_EXTENSION] = runtime
        app.teardown_request(self._teardown)
        if self.webhook_path is not None:
            app.add_url_rule(self.webhook_path, "tenancy_wix_webhook", self._webhook, methods=["POST"])

    @property
    def runtime(self) -> Runtime:
        """The current app's engines, Wix client and session factory."""
        runtime = current_app.extensions.get(_EXTENSION)
        if not isinstance(runtime, Runtime):
            raise ConfigurationError("FlaskTenancy.init_app(app) was not called for this app")
        return runtime

    def close(self, app: Flask) -> None:
        """Dispose of *app*'s engines and close its Wix client (at shutdown)."""
        runtime = app.extensions.pop(_EXTENSION, None)
        if isinstance(runtime, Runtime):
            runtime.close()

    @property
    def session(self) -> TenantSession:
        """This request's tenant session, opened from ``Authorization`` on first use."""
        session: TenantSession | None = g.get(_SESSION)
        if session is None:
            try:
                session = self.runtime.sessions.for_token(request.headers.get("Authorization", ""))
            except TenancyError as exc:
                self._refuse(exc)
            setattr(g, _SESSION, session)
            setattr(g, _LOG_RESTORE, log_context.push(session.tenant_id))
        return session

    def _refuse(self, exc: TenancyError) -> NoReturn:
        answer = refusal(exc, retry_after=self.retry_after)
        if answer is None:
            raise exc
        # JSON, not werkzeug's HTML page: API clients read it like FastAPI's answer.
        response = jsonify(error_body(answer.detail))
        response.status_code = answer.status
        response.headers.update(answer.headers)
        error: type[HTTPException] = Unauthorized if answer.status == 401 else ServiceUnavailable
        raise error(answer.detail, response=response)

    @staticmethod
    def _teardown(exc: BaseException | None) -> None:
        session: TenantSession | None = g.pop(_SESSION, None)
        restore: Callable[[], None] | None = g.pop(_LOG_RESTORE, None)
        try:
            if session is not None:
                if exc is not None:
                    session.rollback()
                session.close()
        finally:
            if restore is not None:
                restore()

    def _webhook(self) -> ResponseReturnValue:
        body = _bounded_body()
        if body is None:
            return jsonify(error_body("webhook body is too large")), 413, {"Connection": "close"}
        try:
            action = receive_webhook(self.runtime, body, self.on_event)
        except InvalidWebhook as exc:
            log.info("webhook refused with 401: %s", exc)
            return jsonify(error_body("invalid webhook")), 401
        return jsonify(action=action)
