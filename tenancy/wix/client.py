"""The Wix HTTP client: Token Info, client-credentials app tokens and Get App Instance.

Contracts follow Wix's API (POST ``/oauth2/token-info``, POST ``/oauth2/token`` with four
snake_case fields, GET ``/apps/v1/instance`` with the bare token in ``Authorization``).

Retries run in tenacity (``Retrying`` with ``retry_if_result``), not in a urllib3 ``Retry``
on the adapter: our wait function caps ``Retry-After`` (urllib3 sleeps whatever the server
says) and adds jitter, each retry is logged (at DEBUG) with Wix's request id, the final
error still carries the last status and request id (urllib3 would raise ``MaxRetryError``
without them), the injected ``sleep`` means tests need no real waiting, and it behaves the
same whatever ``requests.Session`` the caller injects. The adapter this module mounts
therefore has urllib3 retries switched off, so nothing is retried twice. (stamina, built on
tenacity, was not used: it retries on exceptions only and its sleep cannot be injected per
client, only switched off process-wide for tests.)

Secrets: the app secret, app tokens and request tokens never reach a message, a log line
or a ``repr()``. Foreign exceptions (which may hold the request body) are translated
outside their ``except`` block, so they are not even chained as ``__context__``.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tenancy import lru
from tenancy.errors import (
    ConfigurationError,
    InvalidToken,
    WixAuthError,
    WixError,
    WixInstanceNotAccessible,
    WixRateLimited,
    WixUnavailable,
)
from tenancy.instance_ids import parse_instance_id
from tenancy.settings import DEFAULT_WIX_API_BASE_URL, Settings
from tenancy.wix import jsonsafe
from tenancy.wix.singleflight import SingleFlight
from tenancy.wix.types import AppInstance, TokenInfo

__all__ = ["DEFAULT_POOL_SIZE", "WixClient"]

log = logging.getLogger("tenancy.wix")

DEFAULT_POOL_SIZE = 64  # the sync job shares one client across up to 32 threads
DEFAULT_APP_TOKEN_TTL = 14_400  # "Always 14400 (4 hours)" when expires_in is missing
MAX_APP_TOKEN_TTL = 366 * 86_400  # an expires_in beyond a year is not Wix's answer
_MAX_REQUEST_ID = 100  # characters of x-wix-request-id kept (Wix's are ~40)
_MAX_DETAIL = 200  # characters of a Wix error description kept in a message
# OAuth error codes that mean "these app credentials are wrong" (RFC 6749 §5.2), as opposed
# to "no token for this instance".
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
# Wix access tokens ("OauthNG.JWS.<jwt>") and bare JWTs, masked in error details.
_TOKEN_LIKE = re.compile(r"OauthNG\.\S+|eyJ[\w-]+\.[\w-]+\.[\w-]*")
# Token Info refusing the token itself (RFC 6750 §3.1), as opposed to a malformed request.
_TOKEN_REFUSALS = frozenset({"invalid_token"})


@dataclass(frozen=True)
class _Reply:
    status: int
    content: bytes
    request_id: str | None
    retry_after: str | None = None


def _where(instance_id: uuid.UUID | None) -> str:
    return f" for instance {instance_id}" if instance_id is not None else ""


class WixClient:
    """Calls Wix for one app, identified by its app id and secret.

    Thread-safe: share one client (and its connection pool) across threads. Every request
    has a ``timeout``; 429, 5xx, connection errors and timeouts are retried up to
    ``max_retries`` times with exponential backoff and jitter (``Retry-After`` honoured,
    capped at ``retry_after_max``), then raise :class:`~tenancy.WixRateLimited` (429) or
    :class:`~tenancy.WixUnavailable`. App tokens are cached per instance until
    ``token_refresh_skew`` seconds before they expire (at most half their lifetime early).

    ``http`` is used as given when passed (mount your own adapter on it); otherwise the
    client builds a ``requests.Session`` with a pool of ``pool_size`` connections and
    closes it in :meth:`close`. ``clock`` (monotonic seconds), ``sleep`` and ``rng`` are
    injectable for tests.
    """

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        base_url: str = DEFAULT_WIX_API_BASE_URL,
        http: requests.Session | None = None,
        timeout: float = 10.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        token_refresh_skew: float = 300.0,
        token_cache_size: int = 10_000,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not app_id or not app_secret:
            raise ConfigurationError(
                "WixClient needs an app id and an app secret (WIX_APP_ID/WIX_APP_SECRET)"
            )
        if max_retries < 0 or timeout <= 0 or token_cache_size < 1:
            raise ConfigurationError("max_retries must be >= 0, timeout > 0 and token_cache_size >= 1")
        self._app_id = app_id
        self._secret = app_secret
        self._base_url = base_url.rstrip("/")
        self._own_http = http is None
        self._pool_size = pool_size
        self._http = http if http is not None else _pooled_session(pool_size, self._base_url)
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_max = retry_after_max
        self._skew = token_refresh_skew
        self._cache_size = token_cache_size
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        # instance id -> (app token, expires at on self._clock); LRU order.
        self._tokens: collections.OrderedDict[uuid.UUID, tuple[str, float]] = collections.OrderedDict()
        self._token_flights: SingleFlight[uuid.UUID, str] = SingleFlight()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> WixClient:
        """A client from :class:`~tenancy.Settings` (app id, secret, base URL); ``options``
        are passed on (``http=``, ``timeout=``, ...). Missing credentials raise
        :class:`~tenancy.ConfigurationError`."""
        if not settings.wix_app_id or not settings.wix_app_secret:
            raise ConfigurationError("set WIX_APP_ID and WIX_APP_SECRET to call Wix")
        options.setdefault("base_url", settings.wix_api_base_url)
        return cls(settings.wix_app_id, settings.wix_app_secret, **options)

    def __repr__(self) -> str:
        return f"WixClient(app_id={self._app_id!r}, base_url={self._base_url!r})"

    @property
    def app_id(self) -> str:
        """The app id (Token Info's ``clientId`` must equal it)."""
        return self._app_id

    @property
    def base_url(self) -> str:
        """The API root, without a trailing slash."""
        return self._base_url

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_http:
            self._http.close()

    def after_fork(self) -> None:
        """In a forked child process: drop what the parent's copy held (connections, app
        tokens, locks) so the child makes its own (sockets shared with the parent would mix
        two processes' requests on one connection). Only for a client that built its own
        HTTP session: a session passed as ``http=`` raises :class:`~tenancy.ConfigurationError`.
        """
        if not self._own_http:
            raise ConfigurationError("a WixClient given its own http= session cannot be used after fork")
        # The old session is not closed: its sockets are the parent's (close() here would
        # only drop this process's copies), and a lock held by a parent thread at fork time
        # would never be released here.
        self._http = _pooled_session(self._pool_size, self._base_url)
        self._lock = threading.Lock()
        self._tokens = collections.OrderedDict()
        self._token_flights = SingleFlight()

    def __enter__(self) -> WixClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Token Info ---------------------------------------------------------------------

    def token_info(self, token: str) -> TokenInfo:
        """Ask Token Info about an access token (sent verbatim: strip ``Bearer `` first).

        A 4xx other than 408 and 429 (those are retried, then
        :class:`~tenancy.WixUnavailable`/:class:`~tenancy.WixRateLimited`) means Wix refused
        the token: :class:`~tenancy.InvalidToken`, ``definite`` for 401, 403 and a 400
        ``invalid_token`` (Wix judged the token itself). Judging a 200 answer (active, this
        app, an instance) is the caller's job; see :class:`tenancy.wix.resolver.TokenResolver`.
        """
        reply = self._send(
            "POST", "token_info", "/oauth2/token-info", json_body={"token": token}, secrets=(token,)
        )
        if reply.status != 200:
            if 400 <= reply.status < 500:
                code, _ = _error_fields(reply.content)
                definite = reply.status in (401, 403) or (
                    reply.status == 400 and (code or "").lower() in _TOKEN_REFUSALS
                )
                raise InvalidToken(reason=f"Token Info answered HTTP {reply.status}", definite=definite)
            raise self._error(WixError, "token_info", reply, secrets=(token,))
        return TokenInfo.from_json(self._json(reply, "token_info"))

    # --- app tokens ---------------------------------------------------------------------

    def app_access_token(self, instance_id: uuid.UUID | str) -> str:
        """An app access token for the instance (client-credentials grant), cached.

        Concurrent callers for one instance share one request. Raises
        :class:`~tenancy.WixInstanceNotAccessible` when Wix refuses this instance (app
        removed, unknown instance) and a plain :class:`~tenancy.WixAuthError` when it
        refuses the app's credentials.
        """
        iid = parse_instance_id(instance_id)
        token = self._cached_token(iid)
        if token is not None:
            return token
        return self._token_flights.do(iid, lambda: self._fetch_token(iid))

    def forget_app_token(self, instance_id: uuid.UUID | str, token: str | None = None) -> None:
        """Drop the cached app token of an instance (only if it is ``token``, when given)."""
        iid = parse_instance_id(instance_id)
        with self._lock:
            entry = self._tokens.get(iid)
            if entry is not None and (token is None or entry[0] == token):
                del self._tokens[iid]

    def _cached_token(self, iid: uuid.UUID) -> str | None:
        with self._lock:
            entry = self._tokens.get(iid)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._tokens[iid]
                return None
            self._tokens.move_to_end(iid)
            return entry[0]

    def _fetch_token(self, iid: uuid.UUID) -> str:
        # Another thread may have stored a token between our cache miss and this flight.
        token = self._cached_token(iid)
        if token is not None:
            return token
        body = {
            "grant_type": "client_credentials",
            "client_id": self._app_id,
            "client_secret": self._secret,
            "instance_id": str(iid),
        }
        reply = self._send("POST", "access_token", "/oauth2/token", json_body=body, instance_id=iid)
        if reply.status != 200:
            raise self._token_error(reply, iid)
        data = self._json(reply, "access_token", instance_id=iid)
        token = data.get("access_token") if isinstance(data, Mapping) else None
        # It goes into an Authorization header: printable ASCII without spaces, or it is no token
        # (anything else would fail later, in http.client, as UnicodeEncodeError or worse).
        if (
            not isinstance(token, str)
            or not token
            or not (token.isascii() and token.isprintable())
            or " " in token
        ):
            raise WixError(
                f"Wix access_token for instance {iid}: the answer has no access_token",
                status=reply.status,
                request_id=reply.request_id,
            )
        expires_in = _seconds(data.get("expires_in"), default=DEFAULT_APP_TOKEN_TTL)
        if expires_in is None:
            raise WixError(
                f"Wix access_token for instance {iid}: expires_in is not a number of seconds "
                f"between 0 and {MAX_APP_TOKEN_TTL}",
                status=reply.status,
                request_id=reply.request_id,
            )
        # Refresh early, but never by more than half the lifetime (short-lived tokens
        # stay cached for a while instead of never).
        lifetime = expires_in - min(self._skew, expires_in / 2)
        with self._lock:
            lru.put(self._tokens, iid, (token, self._clock() + lifetime), self._cache_size)
        return token

    def _token_error(self, reply: _Reply, iid: uuid.UUID) -> WixError:
        code, _ = _error_fields(reply.content)
        # The app's credentials: an RFC 6749 credential error code, or a 401 that names no
        # other error. Anything else in 4xx is about this instance (e.g. not installed).
        if code in _CREDENTIAL_ERRORS or (reply.status == 401 and code in (None, "401")):
            return self._error(WixAuthError, "access_token", reply, instance_id=iid)
        if 400 <= reply.status < 500:
            return self._error(WixInstanceNotAccessible, "access_token", reply, instance_id=iid)
        return self._error(WixError, "access_token", reply, instance_id=iid)

    # --- Get App Instance ---------------------------------------------------------------

    def get_app_instance(self, instance_id: uuid.UUID | str) -> AppInstance:
        """Get App Instance for one instance, with its (cached) app token.

        A 401 drops the cached token and retries once with a fresh one; 401, 403 and 404
        after that raise :class:`~tenancy.WixInstanceNotAccessible` (a
        :class:`~tenancy.WixAuthError` with ``status`` and ``request_id``): Wix refuses this
        one instance, not the app. An answer naming another instance id is a
        :class:`~tenancy.WixError` too, never returned.
        """
        iid = parse_instance_id(instance_id)
        used: list[str] = []  # every token sent, so an echo of any of them is masked
        for attempt in (1, 2):
            token = self.app_access_token(iid)
            used.append(token)
            reply = self._send(
                "GET",
                "get_app_instance",
                "/apps/v1/instance",
                headers={"Authorization": token},  # bare token: what Wix's SDK sends
                instance_id=iid,
                secrets=tuple(used),
            )
            if reply.status == 401 and attempt == 1:
                log.info(
                    "Wix get_app_instance: HTTP 401 for instance %s (request id %s); "
                    "dropping its app token and retrying once",
                    iid,
                    reply.request_id,
                )
                self.forget_app_token(iid, token)
                continue
            if reply.status != 200:
                # 401 (with a fresh token), 403 and 404 are about this one instance: the app
                # token was issued, so the app's credentials are fine (DESIGN.md invariant 7).
                error_type = WixInstanceNotAccessible if reply.status in (401, 403, 404) else WixError
                raise self._error(error_type, "get_app_instance", reply, instance_id=iid, secrets=tuple(used))
            parsed = AppInstance.from_json(self._json(reply, "get_app_instance", instance_id=iid))
            answered = parsed.instance.instance_id if parsed.instance is not None else None
            if answered is not None and answered != iid:
                # Storing this answer would put one tenant's data in another's row.
                raise WixError(
                    f"Wix get_app_instance for instance {iid}: the answer is about instance {answered}",
                    status=reply.status,
                    request_id=reply.request_id,
                )
            return parsed
        raise AssertionError("unreachable")  # pragma: no cover

    # --- transport ----------------------------------------------------------------------

    def _send(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        instance_id: uuid.UUID | None = None,
        secrets: tuple[str, ...] = (),
    ) -> _Reply:
        """One logical call: the HTTP request plus retries on transient failures.

        tenacity runs the loop (``retry_if_result`` on a transient outcome, our own wait
        function so ``Retry-After`` is read from the last reply and capped, the injected
        ``sleep``); what the last attempt returned decides the error raised here.
        """
        where = _where(instance_id)
        attempts = self._max_retries + 1
        url = self._base_url + path
        # Most calls succeed at once: tenacity's machinery (a Retrying and its state objects
        # per call, ~8% of the sync's CPU per tenant) is only built when a retry is due, and
        # replays this first outcome as its attempt 1 (same waits, logs and attempt count).
        first = self._attempt(method, url, json_body, headers, endpoint, where, secrets)
        if first[0] is not None and not _transient(first):
            return first[0]
        pending = [first]

        def attempt() -> tuple[_Reply | None, str]:
            if pending:
                return pending.pop()
            return self._attempt(method, url, json_body, headers, endpoint, where, secrets)

        def wait(state: tenacity.RetryCallState) -> float:
            reply, _ = _outcome(state)
            return self._delay(state.attempt_number, reply.retry_after if reply is not None else None)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            # DEBUG: a run against a Wix that is down would otherwise log a line per retry
            # per tenant; the sync logs one line per failed tenant and one for the outage.
            reply, failure = _outcome(state)
            if reply is not None:
                failure = f"HTTP {reply.status} (request id {reply.request_id})"
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            log.debug(
                "Wix %s%s: %s; retry %d of %d in %.2fs",
                endpoint,
                where,
                failure,
                state.attempt_number,
                self._max_retries,
                delay,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=wait,
            retry=tenacity.retry_if_result(_transient),
            sleep=self._sleep,
            before_sleep=before_sleep,
            retry_error_callback=_outcome,  # the last outcome, not tenacity's RetryError
            reraise=True,
        )
        reply, failure = retrying(attempt)
        if reply is None:
            raise WixUnavailable(
                f"Wix {endpoint}{where}: {failure} after {attempts} attempts ({self._base_url})"
            )
        if _transient((reply, failure)):
            error_type = WixRateLimited if reply.status == 429 else WixUnavailable
            raise self._error(
                error_type,
                endpoint,
                reply,
                instance_id=instance_id,
                secrets=secrets,
                suffix=f" after {attempts} attempts",
            )
        return reply

    def _attempt(
        self,
        method: str,
        url: str,
        json_body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        endpoint: str,
        where: str,
        secrets: tuple[str, ...] = (),
    ) -> tuple[_Reply | None, str]:
        """One HTTP request: the reply, or ``None`` and why it failed transiently."""
        try:
            response = self._http.request(
                method, url, json=json_body, headers=dict(headers or {}), timeout=self._timeout
            )
        except requests.Timeout:
            return None, f"timed out after {self._timeout:g}s"
        except requests.ConnectionError:
            return None, "connection failed"
        except requests.RequestException as exc:
            # Not transient (e.g. an invalid URL). Raised below, outside this block, so the
            # foreign exception, which may hold the request body, is not chained.
            kind = type(exc).__name__
        else:
            with response:
                reply = _Reply(
                    status=response.status_code,
                    content=response.content,
                    # A header is network text like the body: a server echoing what it was
                    # sent must not put a secret into our messages, logs or attributes.
                    request_id=self._request_id(response.headers.get("x-wix-request-id"), secrets),
                    retry_after=response.headers.get("Retry-After"),
                )
            return reply, ""
        raise WixError(f"Wix {endpoint}{where}: request failed ({kind})")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry ``attempt``: Retry-After if sent, else backoff."""
        if retry_after is not None:
            seconds = _retry_after_seconds(retry_after)
            if seconds is not None:
                return min(seconds, self._retry_after_max)
        # Exponential backoff with "equal jitter": half fixed, half random, so retries of
        # many threads spread out but never collapse to zero.
        cap: float = min(self._backoff_max, self._backoff_base * 2.0 ** (attempt - 1))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _json(self, reply: _Reply, endpoint: str, *, instance_id: uuid.UUID | None = None) -> Any:
        """The reply's JSON body; malformed or unsafe JSON is a :class:`~tenancy.WixError`."""
        problem = "not JSON"
        try:
            return jsonsafe.loads(reply.content)
        except jsonsafe.UnsafeJSON as exc:
            problem = str(exc)  # names the shape, quotes nothing of the body
        except ValueError:
            pass  # raised below, outside the except block: the decode error holds the body
        raise WixError(
            f"Wix {endpoint}{_where(instance_id)}: HTTP {reply.status} with a body that is {problem}",
            status=reply.status,
            request_id=reply.request_id,
        )

    def _redact(self, text: str, secrets: tuple[str, ...] = ()) -> str:
        """*text* (from the network) with the app secret, *secrets* and token-like runs masked."""
        for secret in (self._secret, *secrets):
            if secret:
                text = text.replace(secret, "***")
        return _TOKEN_LIKE.sub("***", text)

    def _request_id(self, value: str | None, secrets: tuple[str, ...]) -> str | None:
        """``x-wix-request-id`` as kept: redacted, printable, at most :data:`_MAX_REQUEST_ID` chars."""
        if not value:
            return None
        # Redacted whole, then cut: cutting first could leave half a secret unmasked.
        value = self._redact(value, secrets)[:_MAX_REQUEST_ID]
        if value.isprintable():  # as Wix's always are: no character to replace
            return value
        return "".join(ch if ch.isprintable() else "?" for ch in value)

    def _error(
        self,
        error_type: type[WixError],
        endpoint: str,
        reply: _Reply,
        *,
        instance_id: uuid.UUID | None = None,
        secrets: tuple[str, ...] = (),
        suffix: str = "",
    ) -> WixError:
        code, description = _error_fields(reply.content)
        detail = ": ".join(part for part in (code, description) if part)
        # Wix might echo what it was sent; never let a secret or anything token-like through.
        detail = self._redact(detail, secrets)
        message = f"Wix {endpoint}{_where(instance_id)}: HTTP {reply.status}{suffix}"
        if detail:
            message += f" ({detail[:_MAX_DETAIL]})"
        if reply.request_id:
            message += f" [request id {reply.request_id}]"
        return error_type(message, status=reply.status, request_id=reply.request_id)


def _transient(outcome: tuple[_Reply | None, str]) -> bool:
    """No answer (connection error, timeout), a 408, a 429 or a 5xx: worth another attempt."""
    reply = outcome[0]
    return reply is None or reply.status in (408, 429) or reply.status >= 500


def _outcome(state: tenacity.RetryCallState) -> tuple[_Reply | None, str]:
    """What the last attempt returned (attempts that raise are never retried)."""
    assert state.outcome is not None
    result: tuple[_Reply | None, str] = state.outcome.result()
    return result


def _pooled_session(pool_size: int, base_url: str) -> requests.Session:
    session = requests.Session()
    # The environment (HTTPS_PROXY / NO_PROXY, REQUESTS_CA_BUNDLE) is read once, here, for the
    # one host this client calls. Left to requests, it is read again on every request (two
    # scans of os.environ, about a fifth of the client's CPU per call), and ~/.netrc
    # credentials for the host would replace the Authorization header every call depends on.
    env = session.merge_environment_settings(base_url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(env["proxies"])
    session.verify = env["verify"]
    # Retries are WixClient's job (see the module docstring): none in urllib3.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=Retry(0, read=False))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _seconds(value: object, *, default: int) -> int | None:
    """``expires_in`` as whole seconds: *default* when absent, ``None`` when present but unusable.

    Usable: a number or a decimal string of whole seconds between 0 (a token already expired:
    used once, never cached) and :data:`MAX_APP_TOKEN_TTL`. A bool, NaN, infinity, a huge or
    negative number, or a word is not (and must not raise ``OverflowError``/``ValueError``).
    """
    if value is None:
        return default
    seconds: float
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value
    elif (
        isinstance(value, str)
        and value.strip().isascii()
        and value.strip().isdigit()
        and len(value.strip()) <= 12
    ):
        seconds = int(value.strip())
    else:
        return None
    try:
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_APP_TOKEN_TTL:
            return None
    except OverflowError:  # an int too large for a float
        return None
    return int(seconds)


def _retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` if unparseable."""
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_fields(content: bytes) -> tuple[str | None, str | None]:
    """(code, description) from any of Wix's error shapes; ``(None, None)`` if none fits.

    Shapes: OAuth ``{error, error_description}``; Wix ``{message, details.applicationError
    {code, description}}``; ``{errorCode, errorDescription}``; or an empty/non-JSON body.
    """
    try:
        body = jsonsafe.loads(content) if content else None
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return None, None

    def text(value: object) -> str | None:
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return None

    details = body.get("details")
    app_error = details.get("applicationError") if isinstance(details, Mapping) else None
    if not isinstance(app_error, Mapping):
        app_error = {}
    code = text(body.get("error")) or text(app_error.get("code")) or text(body.get("errorCode"))
    description = (
        text(body.get("error_description"))
        or text(app_error.get("description"))
        or text(body.get("errorDescription"))
        or text(body.get("message"))
    )
    if description == code:
        description = None
    return code, description
