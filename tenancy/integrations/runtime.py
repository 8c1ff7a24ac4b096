"""What every framework adapter shares: engines, the Wix client, refusals and the webhook step.

:class:`Runtime` is built once at startup from :class:`~tenancy.Settings` and closed at
shutdown; :func:`refusal` turns a tenancy error met while resolving a token into the HTTP
answer (401, or 503 with ``Retry-After``) and :func:`error_body` its JSON body, the same
``{"detail": "..."}`` on every framework; :func:`receive_webhook` verifies a raw body and
applies its event to ``tenants``. Webhook bodies are bounded before they are read
(:data:`MAX_WEBHOOK_BYTES`): a larger announced ``Content-Length`` is refused with 413 at
once, and a body without one (chunked) is read only until it passes the bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine

from tenancy import log_context
from tenancy.errors import ConfigurationError, InvalidToken, WixAuthError, WixError
from tenancy.orm.async_sessions import AsyncTenantSessionFactory
from tenancy.orm.sessions import TenantSessionFactory
from tenancy.settings import Settings
from tenancy.tenant_sync.events import Action, apply_event
from tenancy.wix.client import WixClient
from tenancy.wix.resolver import TokenResolver
from tenancy.wix.webhooks import MAX_WEBHOOK_BYTES, WebhookVerifier, WixEvent

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "MAX_WEBHOOK_BYTES",
    "REQUEST_WIX_OPTIONS",
    "EventHook",
    "Refusal",
    "Runtime",
    "announced_too_large",
    "error_body",
    "receive_webhook",
    "refusal",
]

log = logging.getLogger("tenancy.web")

DEFAULT_RETRY_AFTER = 5  # seconds a client should wait after a 503

# A request waits for Wix: retry once, briefly, then answer 503 rather than hold the client
# for the sync job's patient schedule (4 retries, up to 30 s apart).
REQUEST_WIX_OPTIONS: Mapping[str, Any] = {
    "timeout": 5.0,
    "max_retries": 1,
    "backoff_base": 0.2,
    "backoff_max": 1.0,
    "retry_after_max": 2.0,
}

EventHook = Callable[[WixEvent, Action], None]


@dataclass(frozen=True)
class Refusal:
    """The HTTP answer for a request whose token could not give a tenant."""

    status: int
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)


def announced_too_large(content_length: str | int | None) -> bool:
    """Whether a request's ``Content-Length`` already says its body exceeds :data:`MAX_WEBHOOK_BYTES`.

    A malformed value is left to the framework (it refuses the request itself).
    """
    if content_length is None:
        return False
    try:
        return int(content_length) > MAX_WEBHOOK_BYTES
    except ValueError:
        return False


def refusal(exc: BaseException, *, retry_after: int = DEFAULT_RETRY_AFTER) -> Refusal | None:
    """401 for :class:`~tenancy.InvalidToken`; 503 + ``Retry-After`` when Wix could not answer.

    Every refused token gets the same answer; the reason goes to one INFO line of
    ``tenancy.web`` (never the token). ``None`` for any other error: it is not the client's
    fault, let the framework say 500.
    """
    if isinstance(exc, InvalidToken):
        log.info("request refused with 401: token %s", exc.reason or "rejected")
        return Refusal(401, "invalid token", {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, WixError) and not isinstance(exc, WixAuthError):
        # Unavailable, rate limited, or an answer tenancy could not read: the token was not
        # checked, so neither yes nor no; the client may try again.
        log.warning("Wix could not check a token (%s); answering 503", type(exc).__name__)
        return Refusal(503, "Wix is unavailable, try again", {"Retry-After": str(retry_after)})
    return None


def error_body(detail: str) -> dict[str, str]:
    """The JSON body of every error tenancy answers, on FastAPI and Flask alike.

    ``{"detail": "..."}``: FastAPI's own shape for ``HTTPException``, so a FastAPI app's
    errors all look alike and a Flask app's tenancy errors look the same as FastAPI's.
    """
    return {"detail": detail}


@dataclass
class Runtime:
    """The engines, Wix client and session factory a web app holds between startup and shutdown."""

    settings: Settings
    engine: Engine
    admin_engine: Engine
    wix: WixClient
    resolver: TokenResolver
    sessions: TenantSessionFactory
    verifier: WebhookVerifier | None
    async_sessions: AsyncTenantSessionFactory | None = None

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        asyncio: bool = False,
        engine_options: Mapping[str, Any] | None = None,
        wix_options: Mapping[str, Any] | None = None,
    ) -> Runtime:
        """Build everything from *settings*; nothing connects until the first request.

        With ``asyncio=True`` there are also :class:`~tenancy.AsyncTenantSessionFactory`
        sessions on async engines of the same URLs (webhooks keep the sync admin engine).
        """
        wix = WixClient.from_settings(settings, **{**REQUEST_WIX_OPTIONS, **(wix_options or {})})
        options = dict(engine_options or {})
        url, admin_url = settings.require_database_urls("the web app")
        engine = create_engine(url, **options)
        admin_engine = create_engine(admin_url, **options)
        resolver = TokenResolver(wix)
        verifier = (
            WebhookVerifier(settings.wix_webhook_public_key) if settings.wix_webhook_public_key else None
        )
        # The resolver remembers refusals: a client repeating a refused token gets 401 without
        # another Token Info call.
        sessions = TenantSessionFactory(
            engine,
            admin_engine=admin_engine,
            resolver=resolver,
            binding_key=settings.binding_key,
        )
        runtime = cls(settings, engine, admin_engine, wix, resolver, sessions, verifier)
        if asyncio:
            try:
                from sqlalchemy.ext.asyncio import create_async_engine
            except ImportError:
                message = "asyncio=True needs greenlet: pip install 'wix-tenancy[async]'"
                raise ConfigurationError(message) from None

            runtime.async_sessions = AsyncTenantSessionFactory(
                create_async_engine(url, **options),
                admin_engine=create_async_engine(admin_url, **options),
                resolver=sessions.resolver,
                binding_key=settings.binding_key,
            )
        return runtime

    def close(self) -> None:
        """Close the Wix client's connections and dispose of the sync engines."""
        self.wix.close()
        self.engine.dispose()
        self.admin_engine.dispose()

    async def aclose(self) -> None:
        """:meth:`close`, and dispose of the async engines too."""
        if self.async_sessions is not None:
            await self.async_sessions.engine.dispose()
            if self.async_sessions.admin_engine is not None:
                await self.async_sessions.admin_engine.dispose()
        self.close()


def receive_webhook(runtime: Runtime, body: bytes, on_event: EventHook | None = None) -> Action:
    """Verify *body* (raises :class:`~tenancy.InvalidWebhook`) and apply its event to ``tenants``."""
    if runtime.verifier is None:
        raise ConfigurationError(
            "the webhook route needs WIX_WEBHOOK_PUBLIC_KEY (Settings.wix_webhook_public_key)"
        )
    event = runtime.verifier.parse(body)
    with log_context.bound(event.instance_id):
        action = apply_event(runtime.admin_engine, event)
        if action == "removed":
            # This process stops handing out sessions at once (other processes within their
            # registry's ttl: their next registration check refuses the removed tenant).
            runtime.sessions.registry.forget(event.instance_id)
            if runtime.async_sessions is not None:
                runtime.async_sessions.registry.forget(event.instance_id)
        log.info("Wix event %s applied: %s", event.event_type, action)
        if on_event is not None:
            on_event(event, action)
    return action
