"""The Wix API emulator: sites, tokens, faults and counters behind three Wix endpoints.

Serves ``POST /oauth2/token-info``, ``POST /oauth2/token`` and ``GET /apps/v1/instance``
with Wix's shapes (API.md §2-4, §8), plus a control API under ``/_emulator/`` so that other
processes can read counters, add sites, mint tokens and inject faults. Every request does
O(1) work under one lock, so 10,000+ sites and hundreds of requests per second are cheap.
"""

from __future__ import annotations

import collections
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenancy.emulator.server import Reply, Request, Server
from tenancy.emulator.sites import EmulatedSite, random_site, site_from_dict

__all__ = ["ENDPOINTS", "FAULT_KINDS", "OUTAGE_KINDS", "Emulator", "RecordedRequest"]

ENDPOINTS = ("token_info", "access_token", "get_app_instance")
FAULT_KINDS = ("429", "429-retry-after", "500", "503", "malformed", "drop", "timeout")
OUTAGE_KINDS = ("drop", "500", "503", "timeout")  # how "Wix is down" looks from outside

_ROUTES = {
    ("POST", "/oauth2/token-info"): "token_info",
    ("POST", "/oauth2/token"): "access_token",
    ("GET", "/apps/v1/instance"): "get_app_instance",
}
_JSON = "application/json"


def _wix_error(message: str, code: str) -> dict[str, Any]:
    """Wix's standard error body (API.md §8.1)."""
    return {
        "message": message,
        "details": {"applicationError": {"code": code, "description": message, "data": {}}},
    }


_BODY_401 = _wix_error("UNAUTHENTICATED", "UNAUTHENTICATED")
_BODY_404 = _wix_error("App instance not found", "NOT_FOUND")
_BODY_429 = _wix_error("RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED")
_BODY_5XX = {"message": "", "details": {}}  # "sent empty by design"
_NOT_INSTALLED = {"error": "invalid_request", "error_description": "instance not found"}
_BAD_CLIENT = {"error": "invalid_client", "error_description": "invalid client credentials"}
# Wix's application error code for a status (API.md §8.1), for per-instance refusals.
_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


@dataclass(frozen=True)
class RecordedRequest:
    """A request the emulator received, for assertions (headers lowercased)."""

    endpoint: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    instance_id: str | None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class _UserToken:
    instance_id: str
    subject_type: str
    subject_id: str
    client_id: str
    issued_at: float
    expires_at: float


@dataclass
class _Faults:
    rate: float
    kinds: tuple[str, ...]
    instance_id: str | None
    endpoints: frozenset[str] | None
    remaining: int | None
    rng: random.Random


@dataclass
class _Override:
    endpoint: str
    status: int
    body: bytes
    headers: dict[str, str]
    instance_id: str | None
    remaining: int | None


class Emulator:
    """A local Wix API on ``127.0.0.1`` for tests and development; starts at construction.

    ``sites`` seeds that many realistic sites, deterministically from ``seed``;
    ``app_id``/``app_secret`` are generated when not given. App tokens expire after
    ``token_ttl`` seconds. Faults: ``retry_after`` is the ``Retry-After`` value of the
    "429-retry-after" kind and ``timeout_delay`` how long a "timeout" fault stalls before
    dropping the connection. ``rate_limit`` (requests per minute per instance, Wix
    documents 200) makes the token endpoint and Get App Instance answer 429 past it (both
    count: Wix does not say whether its token endpoint shares the limit, so the emulator is
    the stricter), as Wix throttles; off by default; its one-minute windows run on
    ``clock`` (monotonic seconds), which tests share with the client's rate limiter so no
    real minute passes. Per-instance refusals:
    :meth:`set_instance_status`; Wix down: :meth:`set_outage`. Use as a context manager,
    or call :meth:`stop`.
    """

    def __init__(
        self,
        sites: int | Iterable[EmulatedSite] = 3,
        *,
        app_id: str | None = None,
        app_secret: str | None = None,
        latency: float = 0.0,
        seed: int = 0,
        token_ttl: int = 14_400,
        host: str = "127.0.0.1",
        port: int = 0,
        retry_after: float = 1,
        timeout_delay: float = 2.0,
        history: int = 500,
        rate_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rng = random.Random(seed)
        self.app_id = app_id or str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.app_secret = app_secret or f"emulator-secret-{self._rng.getrandbits(64):016x}"
        self.token_ttl = token_ttl
        self.retry_after = retry_after
        self.timeout_delay = timeout_delay
        self._latency = latency
        self._lock = threading.Lock()
        self._sites: dict[str, EmulatedSite] = {}
        self._user_tokens: dict[str, _UserToken] = {}
        self._app_tokens: dict[str, tuple[str, float]] = {}  # token -> (instance id, expires at)
        self._counts: collections.Counter[str] = collections.Counter()
        self._requests: collections.deque[RecordedRequest] = collections.deque(maxlen=history)
        self._faults: _Faults | None = None
        self._overrides: list[_Override] = []
        self._request_number = 0
        self.rate_limit = rate_limit
        self._clock = clock
        self._outage: str | None = None
        self._windows: dict[str, tuple[float, int]] = {}  # instance -> (window start, requests)
        if isinstance(sites, int):
            for number in range(1, sites + 1):
                self._store(random_site(self._rng, number))
        else:
            for site in sites:
                self._store(site)
        self._server = Server((host, port), self)
        # A short poll interval: stop() (shutdown) waits up to one interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="wix-emulator", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Emulator:
        """An emulator whose sites come from a JSON file.

        The file holds a list of sites, or an object ``{"sites": [...], "app_id": ...,
        "app_secret": ...}``; each site is an object of :class:`EmulatedSite` field names
        (all optional; missing ids are generated from ``seed``).
        """
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict):
            for key in ("app_id", "app_secret"):
                if data.get(key):
                    kwargs.setdefault(key, data[key])
            data = data.get("sites", [])
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ValueError(f"{path}: expected a list of site objects")
        rng = random.Random(kwargs.get("seed", 0))
        return cls([site_from_dict(item, rng=rng) for item in data], **kwargs)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: use it as the client's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Emulator(base_url={self.base_url!r}, app_id={self.app_id!r}, sites={len(self._sites)})"

    # --- sites --------------------------------------------------------------------------

    def _store(self, site: EmulatedSite) -> str:
        site.instance_id = str(uuid.UUID(site.instance_id))
        if site.instance_id in self._sites:
            raise ValueError(f"duplicate instance id {site.instance_id}")
        self._sites[site.instance_id] = site
        return site.instance_id

    @property
    def instance_ids(self) -> list[str]:
        """Instance ids of every site (removed apps included), in creation order."""
        with self._lock:
            return list(self._sites)

    def site(self, instance_id: str) -> EmulatedSite:
        """The live site object; mutate it (or use :meth:`update_site`) to change answers."""
        with self._lock:
            return self._sites[str(uuid.UUID(str(instance_id)))]

    def add_site(self, **fields: Any) -> str:
        """Add a site from :class:`EmulatedSite` fields; returns its instance id."""
        with self._lock:
            if fields:
                return self._store(site_from_dict(fields, rng=self._rng))
            return self._store(random_site(self._rng, len(self._sites) + 1))

    def update_site(self, instance_id: str, **fields: Any) -> None:
        """Change a site's fields (what Get App Instance reports next)."""
        site = self.site(instance_id)
        with self._lock:
            site.update(**fields)

    def remove_app(self, instance_id: str) -> None:
        """Uninstall: the token endpoint refuses the instance, its tokens go inactive."""
        self.update_site(instance_id, installed=False)

    def reinstall_app(self, instance_id: str) -> None:
        """Install again (same instance id, as on Wix)."""
        self.update_site(instance_id, installed=True)

    # --- tokens -------------------------------------------------------------------------

    def mint_token(
        self, instance_id: str, *, subject_type: str = "USER", ttl: float = 3600, client_id: str | None = None
    ) -> str:
        """A user/visitor access token that Token Info recognises for the instance.

        ``client_id`` makes it another app's token; a negative ``ttl`` an expired one.
        """
        iid = self.site(instance_id).instance_id
        token = "OauthNG.JWS.emu-" + secrets.token_urlsafe(24)
        now = time.time()
        with self._lock:
            self._user_tokens[token] = _UserToken(
                instance_id=iid,
                subject_type=subject_type,
                subject_id=str(uuid.uuid4()),
                client_id=client_id or self.app_id,
                issued_at=now,
                expires_at=now + ttl,
            )
        return token

    def expire_app_tokens(self, instance_id: str | None = None) -> None:
        """Make issued app tokens (of one instance, or all) unknown: the next call gets 401."""
        with self._lock:
            if instance_id is None:
                self._app_tokens.clear()
                return
            iid = str(uuid.UUID(str(instance_id)))
            for token in [t for t, (owner, _) in self._app_tokens.items() if owner == iid]:
                del self._app_tokens[token]

    # --- counters and history -----------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Requests per endpoint (``"token_info"``) and per ``"endpoint:instance_id"``.

        Faults served are counted too, as ``"fault"`` and ``"fault:<kind>"``.
        """
        with self._lock:
            return dict(self._counts)

    def count(self, endpoint: str, instance_id: str | None = None) -> int:
        """Requests received by ``endpoint`` (for one instance, when given)."""
        key = endpoint if instance_id is None else f"{endpoint}:{uuid.UUID(str(instance_id))}"
        with self._lock:
            return self._counts[key]

    def reset_counts(self) -> None:
        """Zero every counter and forget recorded requests."""
        with self._lock:
            self._counts.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent requests to the Wix endpoints, oldest first."""
        with self._lock:
            return list(self._requests)

    def last_request(self, endpoint: str | None = None) -> RecordedRequest:
        """The most recent request (to ``endpoint``, when given)."""
        with self._lock:
            for request in reversed(self._requests):
                if endpoint is None or request.endpoint == endpoint:
                    return request
        raise LookupError(f"no request to {endpoint or 'any endpoint'} recorded")

    # --- faults, overrides, latency -----------------------------------------------------

    def set_faults(
        self,
        rate: float | None = None,
        kinds: Sequence[str] = FAULT_KINDS,
        instance_id: str | None = None,
        endpoints: Sequence[str] | None = None,
        seed: int | None = None,
        times: int | None = None,
    ) -> None:
        """Answer a share ``rate`` of matching requests with a fault drawn from ``kinds``.

        Matching: every Wix endpoint, or ``endpoints``; every instance, or ``instance_id``.
        ``rate`` defaults to 1.0 for one instance, else 0.0 (off). ``times`` stops after
        that many faults. Replaces any earlier setting.
        """
        unknown = set(kinds) - set(FAULT_KINDS)
        bad_endpoints = set(endpoints or ()) - set(ENDPOINTS)
        if unknown or bad_endpoints or not kinds:
            raise ValueError(f"unknown fault kinds {sorted(unknown)} or endpoints {sorted(bad_endpoints)}")
        effective = rate if rate is not None else (1.0 if instance_id is not None else 0.0)
        with self._lock:
            self._faults = _Faults(
                rate=effective,
                kinds=tuple(kinds),
                instance_id=str(uuid.UUID(str(instance_id))) if instance_id is not None else None,
                endpoints=frozenset(endpoints) if endpoints is not None else None,
                remaining=times,
                rng=random.Random(seed),
            )

    def clear_faults(self) -> None:
        """No more faults."""
        with self._lock:
            self._faults = None

    def respond_with(
        self,
        endpoint: str,
        *,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        instance_id: str | None = None,
        times: int | None = None,
    ) -> None:
        """Serve this exact answer on ``endpoint`` (e.g. a sample error body verbatim).

        ``body`` may be bytes, a str, or anything JSON-serialisable; ``times`` limits how
        often (default: until :meth:`clear_overrides`). The newest override wins.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        raw = (
            body
            if isinstance(body, bytes)
            else body.encode()
            if isinstance(body, str)
            else json.dumps(body).encode()
        )
        with self._lock:
            self._overrides.append(
                _Override(
                    endpoint=endpoint,
                    status=status,
                    body=raw if body is not None else b"",
                    headers={"Content-Type": _JSON, **(headers or {})},
                    instance_id=str(uuid.UUID(str(instance_id))) if instance_id is not None else None,
                    remaining=times,
                )
            )

    def clear_overrides(self) -> None:
        """Back to normal answers (per-instance statuses included)."""
        with self._lock:
            self._overrides.clear()

    def set_instance_status(
        self, instance_id: str, status: int, *, endpoint: str = "get_app_instance", times: int | None = None
    ) -> None:
        """Refuse one instance on ``endpoint`` with ``status``, in Wix's error shape.

        Get App Instance answers Wix's standard body (``PERMISSION_DENIED`` for 403,
        ``NOT_FOUND`` for 404, ...); the token endpoint answers OAuth's ``{error,
        error_description}``. Every answer has its own ``x-wix-request-id``. The other
        instances are unaffected; :meth:`clear_overrides` ends it.
        """
        if endpoint == "access_token":
            body: dict[str, Any] = {
                "error": "invalid_request",
                "error_description": f"HTTP {status} for instance",
            }
        else:
            code = _CODES.get(status, str(status))
            body = _wix_error(code.replace("_", " ").lower(), code)
        self.respond_with(endpoint, status=status, body=body, instance_id=instance_id, times=times)

    def set_outage(self, kind: str | None = "drop") -> None:
        """Wix is down: every Wix endpoint answers ``kind`` (``"drop"``: the connection closes
        without an answer; ``"500"``/``"503"``: Wix's empty 5xx; ``"timeout"``: stalls
        ``timeout_delay`` seconds, then drops). ``None`` ends the outage. The control API
        under ``/_emulator/`` keeps working."""
        if kind is not None and kind not in OUTAGE_KINDS:
            raise ValueError(f"unknown outage kind {kind!r}; one of {', '.join(OUTAGE_KINDS)}")
        with self._lock:
            self._outage = kind

    def clear_outage(self) -> None:
        """Wix is back."""
        self.set_outage(None)

    def set_latency(self, seconds: float) -> None:
        """Delay every Wix answer by ``seconds``."""
        self._latency = seconds

    # --- request handling ---------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Answer one HTTP request (called by the server's handler threads)."""
        path = request.path.split("?", 1)[0]
        if path.startswith("/_emulator/"):
            return self._control(request.method, path, request.body)
        endpoint = _ROUTES.get((request.method, path))
        if endpoint is None:
            return self._reply(404, {"message": "Not Found", "details": {}})
        body = _json_object(request.body)
        with self._lock:
            iid = self._instance_of(endpoint, request, body)
            self._counts[endpoint] += 1
            if iid is not None:
                self._counts[f"{endpoint}:{iid}"] += 1
            self._requests.append(
                RecordedRequest(endpoint, request.method, path, request.headers, request.body, iid)
            )
            fault = self._outage or self._draw_fault(endpoint, iid)
            if self._outage is not None:
                self._counts["outage"] += 1
            if fault is None and endpoint != "token_info" and self._throttled(iid):
                fault = "429"
            override = self._take_override(endpoint, iid) if fault is None else None
        if self._latency > 0:
            time.sleep(self._latency)
        if fault is not None:
            return self._fault(fault)
        if override is not None:
            return self._reply(override.status, override.body, override.headers)
        if endpoint == "token_info":
            return self._token_info(body)
        if endpoint == "access_token":
            return self._access_token(body)
        return self._get_app_instance(request.headers.get("authorization"))

    def _instance_of(self, endpoint: str, request: Request, body: dict[str, Any] | None) -> str | None:
        """The instance a request is about, for counters and faults (lock held)."""
        if endpoint == "token_info":
            token = body.get("token") if body else None
            user = self._user_tokens.get(token) if isinstance(token, str) else None
            if user is not None:
                return user.instance_id
            app = self._app_tokens.get(token) if isinstance(token, str) else None
            return app[0] if app else None
        if endpoint == "access_token":
            value = body.get("instance_id") if body else None
            try:
                return str(uuid.UUID(value)) if isinstance(value, str) else None
            except ValueError:
                return None
        app = self._app_tokens.get(request.headers.get("authorization", ""))
        return app[0] if app else None

    def _draw_fault(self, endpoint: str, iid: str | None) -> str | None:
        faults = self._faults
        if faults is None or faults.rate <= 0 or faults.remaining == 0:
            return None
        if faults.endpoints is not None and endpoint not in faults.endpoints:
            return None
        if faults.instance_id is not None and faults.instance_id != iid:
            return None
        if faults.rng.random() >= faults.rate:
            return None
        if faults.remaining is not None:
            faults.remaining -= 1
        kind = faults.rng.choice(faults.kinds)
        self._counts["fault"] += 1
        self._counts[f"fault:{kind}"] += 1
        return kind

    def _throttled(self, iid: str | None) -> bool:
        """Wix's per-instance limit: a one-minute window from its first request (lock held)."""
        if self.rate_limit is None or iid is None:
            return False
        now = self._clock()
        start, used = self._windows.get(iid, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        used += 1
        self._windows[iid] = (start, used)
        if used <= self.rate_limit:
            return False
        self._counts["rate_limited"] += 1
        return True

    def _take_override(self, endpoint: str, iid: str | None) -> _Override | None:
        for override in reversed(self._overrides):
            if override.endpoint != endpoint or override.remaining == 0:
                continue
            if override.instance_id is not None and override.instance_id != iid:
                continue
            if override.remaining is not None:
                override.remaining -= 1
            return override
        return None

    def _fault(self, kind: str) -> Reply:
        if kind == "429":
            return self._reply(429, _BODY_429)
        if kind == "429-retry-after":
            return self._reply(429, _BODY_429, {"Retry-After": f"{self.retry_after:g}"})
        if kind in ("500", "503"):
            return self._reply(int(kind), _BODY_5XX)
        if kind == "malformed":
            return self._reply(200, b"<html><body>502 Bad Gateway</body></html>")
        if kind == "timeout":
            time.sleep(self.timeout_delay)
        return Reply(drop=True)

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
        with self._lock:
            self._request_number += 1
            number = self._request_number
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Reply(
            status=status,
            body=raw,
            headers={
                "Content-Type": _JSON,
                "x-wix-request-id": f"{int(time.time())}.{number:018d}",
                **(headers or {}),
            },
        )

    def _token_info(self, body: dict[str, Any] | None) -> Reply:
        token = body.get("token") if body else None
        if not isinstance(token, str) or not token:
            return self._reply(400, _wix_error("token is required", "INVALID_ARGUMENT"))
        now = time.time()
        with self._lock:
            user = self._user_tokens.get(token)
            app = self._app_tokens.get(token)
            site = self._sites.get(user.instance_id if user else app[0] if app else "")
        if site is None or not site.installed:
            return self._reply(200, {"active": False})
        if user is not None:
            if user.expires_at <= now:
                return self._reply(200, {"active": False})
            subject_type, subject_id, client_id = user.subject_type, user.subject_id, user.client_id
            issued_at, expires_at = user.issued_at, user.expires_at
        else:
            assert app is not None
            if app[1] <= now:
                return self._reply(200, {"active": False})
            subject_type, subject_id, client_id = "APP", self.app_id, self.app_id
            issued_at, expires_at = app[1] - self.token_ttl, app[1]
        return self._reply(
            200,
            {
                "active": True,
                "subjectType": subject_type,
                "subjectId": subject_id,
                "exp": str(int(expires_at)),  # int64 as a JSON string, like Wix's docs
                "iat": str(int(issued_at)),
                "clientId": client_id,
                "accountId": site.account_id,
                "siteId": site.site_id,
                "instanceId": site.instance_id,
            },
        )

    def _access_token(self, body: dict[str, Any] | None) -> Reply:
        if body is None:
            return self._reply(400, {"error": "invalid_request", "error_description": "body must be JSON"})
        if body.get("grant_type") != "client_credentials":
            return self._reply(
                400, {"error": "unsupported_grant_type", "error_description": "unsupported grant"}
            )
        client_ok = secrets.compare_digest(str(body.get("client_id", "")), self.app_id)
        secret_ok = secrets.compare_digest(str(body.get("client_secret", "")), self.app_secret)
        if not (client_ok and secret_ok):
            return self._reply(401, _BAD_CLIENT)
        iid = body.get("instance_id")
        with self._lock:
            try:
                site = self._sites.get(str(uuid.UUID(iid))) if isinstance(iid, str) else None
            except ValueError:
                site = None
            if site is None or not site.installed:
                site = None
            else:
                token = "OauthNG.JWS.emu-app-" + secrets.token_urlsafe(24)
                self._app_tokens[token] = (site.instance_id, time.time() + self.token_ttl)
                if len(self._app_tokens) > 100_000:
                    self._prune_app_tokens()
        if site is None:
            return self._reply(400, _NOT_INSTALLED)
        return self._reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl})

    def _prune_app_tokens(self) -> None:
        now = time.time()
        for token in [t for t, (_, expires) in self._app_tokens.items() if expires <= now]:
            del self._app_tokens[token]

    def _get_app_instance(self, authorization: str | None) -> Reply:
        with self._lock:
            app = self._app_tokens.get(authorization or "")
            site = self._sites.get(app[0]) if app else None
        # Strict on purpose: "Bearer <token>" is unknown here, which catches client bugs.
        if app is None or site is None or app[1] <= time.time():
            return self._reply(401, _BODY_401)
        if not site.installed:
            return self._reply(404, _BODY_404)
        with self._lock:
            body = json.dumps(site.to_body()).encode()
        return self._reply(200, body)

    # --- control API --------------------------------------------------------------------

    def _control(self, method: str, path: str, raw: bytes) -> Reply:
        """``/_emulator/...``: counters, sites, tokens and faults for other processes."""
        body = _json_object(raw) or {}
        parts = path.strip("/").split("/")[1:]
        try:
            if method == "GET" and parts == ["stats"]:
                return self._reply(200, {"counts": self.counts})
            if method == "POST" and parts == ["reset"]:
                self.reset_counts()
                return self._reply(200, {})
            if method == "GET" and parts == ["sites"]:
                return self._reply(200, {"instance_ids": self.instance_ids})
            if method == "POST" and parts == ["sites"]:
                return self._reply(200, {"instance_id": self.add_site(**body)})
            if method == "GET" and len(parts) == 2 and parts[0] == "sites":
                return self._reply(200, self.site(parts[1]).to_body())
            if method == "POST" and len(parts) == 2 and parts[0] == "sites":
                self.update_site(parts[1], **body)
                return self._reply(200, {})
            if (
                method == "POST"
                and len(parts) == 3
                and parts[0] == "sites"
                and parts[2] in ("remove", "reinstall")
            ):
                actions = {"remove": self.remove_app, "reinstall": self.reinstall_app}
                actions[parts[2]](parts[1])
                return self._reply(200, {})
            if method == "POST" and parts == ["tokens"]:
                instance_id = body.pop("instance_id")
                return self._reply(200, {"token": self.mint_token(instance_id, **body)})
            if method == "POST" and len(parts) == 3 and parts[0] == "sites" and parts[2] == "status":
                self.set_instance_status(parts[1], int(body.pop("status")), **body)
                return self._reply(200, {})
            if method == "POST" and parts == ["outage"]:
                self.set_outage(body.get("kind"))
                return self._reply(200, {})
            if method == "POST" and parts == ["faults"]:
                self.set_faults(**body)
                return self._reply(200, {})
            if method == "POST" and parts == ["latency"]:
                self.set_latency(float(body.get("seconds", 0)))
                return self._reply(200, {})
        except (KeyError, ValueError, TypeError) as exc:
            return self._reply(400, {"message": f"{type(exc).__name__}: {exc}", "details": {}})
        return self._reply(404, {"message": "unknown control path", "details": {}})


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
