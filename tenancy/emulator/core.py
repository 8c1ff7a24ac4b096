"""The Wix API emulator: sites, tokens, faults and counters behind three Wix endpoints.

Serves ``POST /oauth2/token-info``, ``POST /oauth2/token`` and ``GET /apps/v1/instance``
with Wix's shapes (API.md §2-4, §8), plus a control API under ``/_emulator/``
(:data:`CONTROL_ENDPOINTS`) so that other processes can read counters, add and remove sites,
change plans, mint tokens and inject faults. Installing, removing or changing the plan of a
site also sends the app Wix's signed webhook (API.md §6) when a ``webhook_url`` is set. Every
request does O(1) work under one lock, so 10,000+ sites and hundreds of requests per second
are cheap.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenancy.emulator.control import BadBody, ControlEndpoint, Field, parse_body
from tenancy.emulator.server import Reply, Request, Server
from tenancy.emulator.sites import FIELD_NAMES, EmulatedSite, iso_time, random_site, site_from_dict

if TYPE_CHECKING:  # the signing key needs cryptography, loaded only when webhooks are used
    from tenancy.emulator.webhooks import WebhookDelivery, WebhookSender

__all__ = [
    "CONTROL_ENDPOINTS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "OUTAGE_KINDS",
    "WEBHOOK_EVENTS",
    "Emulator",
    "RecordedRequest",
]

ENDPOINTS = ("token_info", "access_token", "get_app_instance")
FAULT_KINDS = ("429", "429-retry-after", "500", "503", "malformed", "drop", "timeout")
OUTAGE_KINDS = ("drop", "500", "503", "timeout")  # how "Wix is down" looks from outside
# App Instance events the emulator can send (API.md §6), with what triggers each.
WEBHOOK_EVENTS = (
    "AppInstalled",  # add_site / reinstall_app
    "AppRemoved",  # remove_app
    "PaidPlanPurchased",  # change_plan on a free site
    "PaidPlanChanged",  # change_plan on a paid site
    "PaidPlanAutoRenewalCancelled",  # cancel_plan
)

_ID = "{id}"
_SITE_BODY = '{"site_display_name": "...", "is_free": false, ...}  (EmulatedSite fields, all optional)'
# The control API, in the order `tenancy emulator --help` and the README list it.
CONTROL_ENDPOINTS: tuple[ControlEndpoint, ...] = (
    ControlEndpoint("GET", "/_emulator/endpoints", "", "this list, as JSON"),
    ControlEndpoint("GET", "/_emulator/stats", "", 'request counters: {"counts": {"token_info": 3, ...}}'),
    ControlEndpoint("POST", "/_emulator/reset", "", "zero the counters, forget recorded requests"),
    ControlEndpoint("GET", "/_emulator/sites", "", 'every instance id: {"instance_ids": [...]}'),
    ControlEndpoint(
        "POST",
        "/_emulator/sites",
        _SITE_BODY,
        "install the app on a new site (sends AppInstalled); answers its instance_id",
        any_fields=FIELD_NAMES,
    ),
    ControlEndpoint("GET", f"/_emulator/sites/{_ID}", "", "the site as Get App Instance shows it"),
    ControlEndpoint(
        "POST",
        f"/_emulator/sites/{_ID}",
        '{"locale": "fr", ...}  (EmulatedSite fields to change, at least one)',
        "change what Get App Instance reports (no webhook)",
        any_fields=tuple(name for name in FIELD_NAMES if name != "instance_id"),
        need_one=True,
    ),
    ControlEndpoint("POST", f"/_emulator/sites/{_ID}/remove", "", "remove the app (sends AppRemoved)"),
    ControlEndpoint(
        "POST", f"/_emulator/sites/{_ID}/reinstall", "", "install it again, same id (sends AppInstalled)"
    ),
    ControlEndpoint(
        "POST",
        f"/_emulator/sites/{_ID}/duplicate",
        '{"instance_id": "..."}  (optional: the copy\'s instance id)',
        "duplicate the site: a new instance whose originInstanceId names this one (sends AppInstalled)",
        {"instance_id": Field(("string",))},
    ),
    ControlEndpoint(
        "POST",
        f"/_emulator/sites/{_ID}/plan",
        '{"package_name": "premium", "billing_cycle": "MONTHLY"}  (billing_cycle optional)',
        "buy or change a paid plan (sends PaidPlanPurchased or PaidPlanChanged)",
        {"package_name": Field(("string",), required=True), "billing_cycle": Field(("string",))},
    ),
    ControlEndpoint(
        "POST",
        f"/_emulator/sites/{_ID}/cancel-plan",
        "",
        "turn off the plan's auto-renewal (sends PaidPlanAutoRenewalCancelled)",
    ),
    ControlEndpoint(
        "POST",
        f"/_emulator/sites/{_ID}/status",
        '{"status": 403, "endpoint": "get_app_instance", "times": null}  (endpoint, times optional)',
        "refuse this instance with that status in Wix's error shape (until reset by /overrides/clear)",
        {
            "status": Field(("integer",), required=True),
            "endpoint": Field(("string",), choices=ENDPOINTS),
            "times": Field(("integer", "null")),
        },
    ),
    ControlEndpoint("POST", "/_emulator/overrides/clear", "", "end every per-instance status"),
    ControlEndpoint(
        "POST",
        "/_emulator/tokens",
        '{"instance_id": "...", "subject_type": "USER", "ttl": 3600}  (only instance_id required)',
        'mint a user token: {"token": "..."}',
        {
            "instance_id": Field(("string",), required=True),
            "subject_type": Field(("string",)),
            "ttl": Field(("number",)),
            "client_id": Field(("string",)),
        },
    ),
    ControlEndpoint(
        "POST",
        "/_emulator/outage",
        '{"kind": "drop"}  (one of "drop", "500", "503", "timeout"; null ends the outage)',
        "take every Wix endpoint down (the control API stays up)",
        {"kind": Field(("string", "null"), required=True, choices=(*OUTAGE_KINDS, None))},
    ),
    ControlEndpoint(
        "POST",
        "/_emulator/faults",
        '{"rate": 0.2, "kinds": ["503"], "instance_id": null, "endpoints": null, "seed": null, "times": null}'
        "  (all optional; {} turns faults off)",
        "answer a share of requests with faults (" + ", ".join(FAULT_KINDS) + ")",
        {
            "rate": Field(("number", "null")),
            "kinds": Field(("array",)),
            "instance_id": Field(("string", "null")),
            "endpoints": Field(("array", "null")),
            "seed": Field(("integer", "null")),
            "times": Field(("integer", "null")),
        },
    ),
    ControlEndpoint(
        "POST",
        "/_emulator/latency",
        '{"seconds": 0.2}',
        "delay every Wix answer",
        {"seconds": Field(("number",), required=True)},
    ),
    ControlEndpoint(
        "POST",
        "/_emulator/webhooks",
        '{"instance_id": "...", "event_type": "AppInstalled", "data": {...}}  (data optional)',
        "send any signed App Instance event to --webhook-url as it is",
        {
            "instance_id": Field(("string",), required=True),
            "event_type": Field(("string",), required=True),
            "data": Field(("object",)),
        },
    ),
    ControlEndpoint("GET", "/_emulator/webhooks", "", 'recent deliveries: {"url": ..., "deliveries": [...]}'),
)

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
    :meth:`set_instance_status`; Wix down: :meth:`set_outage`. Webhooks: with
    ``webhook_url``, :meth:`add_site`, :meth:`remove_app`, :meth:`reinstall_app`,
    :meth:`change_plan` and :meth:`cancel_plan` POST Wix's signed event there (within
    ``webhook_timeout`` seconds; a failure is logged, never raised), signed with
    ``webhook_private_key`` (a PEM) or a key generated on first use; the app verifies with
    :attr:`webhook_public_key`. Use as a context manager, or call :meth:`stop`.
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
        webhook_url: str | None = None,
        webhook_private_key: bytes | str | None = None,
        webhook_timeout: float = 5.0,
    ) -> None:
        self._rng = random.Random(seed)
        self._webhook_url = webhook_url
        self._webhook_timeout = webhook_timeout
        self._webhook_sender: WebhookSender | None = None
        self._deliveries: collections.deque[WebhookDelivery] = collections.deque(maxlen=100)
        self._sender_lock = threading.Lock()
        if webhook_private_key is not None or webhook_url is not None:
            self._sender(webhook_private_key)  # a bad key fails here, not at the first event
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
        """Add a site from :class:`EmulatedSite` fields (sends ``AppInstalled``); returns its id."""
        with self._lock:
            if fields:
                iid = self._store(site_from_dict(fields, rng=self._rng))
            else:
                iid = self._store(random_site(self._rng, len(self._sites) + 1))
        self._event(iid, "AppInstalled", {"appId": self.app_id, "originInstanceId": ""})
        return iid

    def update_site(self, instance_id: str, **fields: Any) -> None:
        """Change a site's fields (what Get App Instance reports next; no webhook)."""
        site = self.site(instance_id)
        with self._lock:
            site.update(**fields)

    def remove_app(self, instance_id: str) -> WebhookDelivery | None:
        """Uninstall (sends ``AppRemoved``): the token endpoint refuses the instance, its tokens
        go inactive. Returns the webhook's delivery (``None`` without a ``webhook_url``)."""
        self.update_site(instance_id, installed=False)
        return self._event(instance_id, "AppRemoved", {"appId": self.app_id})

    def reinstall_app(self, instance_id: str) -> WebhookDelivery | None:
        """Install again, same instance id as on Wix (sends ``AppInstalled``)."""
        self.update_site(instance_id, installed=True)
        return self._event(instance_id, "AppInstalled", {"appId": self.app_id, "originInstanceId": ""})

    def change_plan(
        self, instance_id: str, package_name: str, *, billing_cycle: str = "MONTHLY"
    ) -> WebhookDelivery | None:
        """The site buys a paid plan (``PaidPlanPurchased``) or, already paying, changes it
        (``PaidPlanChanged``); Get App Instance reports the new billing."""
        site = self.site(instance_id)
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            was_free, previous, previous_cycle = site.is_free, site.package_name, site.billing_cycle
            invoice = str(uuid.uuid4())
            site.update(
                is_free=False,
                package_name=package_name,
                billing_cycle=billing_cycle,
                billing_time_stamp=iso_time(now),
                auto_renewing=True,
                invoice_id=invoice,
                billing_source="",
            )
        data: dict[str, Any] = {
            "operationTimeStamp": iso_time(now),
            "vendorProductId": package_name,
            "cycle": billing_cycle,
        }
        if was_free:
            data.update(couponName=None, invoiceId=invoice)
            return self._event(instance_id, "PaidPlanPurchased", data)
        data.update(previousVendorProductId=previous, previousCycle=previous_cycle, couponName=None)
        return self._event(instance_id, "PaidPlanChanged", {**data, "invoiceId": invoice})

    def cancel_plan(self, instance_id: str) -> WebhookDelivery | None:
        """The owner turns off the plan's auto-renewal (``PaidPlanAutoRenewalCancelled``)."""
        site = self.site(instance_id)
        with self._lock:
            if site.is_free:
                raise ValueError(f"site {site.instance_id} has no paid plan to cancel")
            site.update(auto_renewing=False)
            data = {
                "operationTimeStamp": iso_time(dt.datetime.now(dt.UTC)),
                "vendorProductId": site.package_name,
                "cycle": site.billing_cycle,
                "cancelReason": "USER_CANCEL",
                "userReason": "",
                "subscriptionCancellationType": "END_OF_PERIOD",
                "cancelledDuringFreeTrial": "NOT_DURING_FREE_TRIAL",
            }
        return self._event(instance_id, "PaidPlanAutoRenewalCancelled", data)

    # --- webhooks -----------------------------------------------------------------------

    def _sender(self, private_key: bytes | str | None = None) -> WebhookSender:
        with self._sender_lock:
            if self._webhook_sender is None:
                from tenancy.emulator.webhooks import WebhookSender

                self._webhook_sender = WebhookSender(
                    self._webhook_url, private_key=private_key, timeout=self._webhook_timeout
                )
            return self._webhook_sender

    @property
    def webhook_url(self) -> str | None:
        """Where events are POSTed (``None``: nowhere); settable."""
        return self._webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self._webhook_url = url
        if self._webhook_sender is not None:
            self._webhook_sender.url = url

    @property
    def webhook_public_key(self) -> str:
        """The PEM public key webhooks are signed for (``WIX_WEBHOOK_PUBLIC_KEY``)."""
        return self._sender().public_key_pem

    @property
    def webhook_public_key_b64(self) -> str:
        """:attr:`webhook_public_key` base64-encoded on one line (shell-safe; Settings accept it)."""
        return self._sender().public_key_b64

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        """The most recent webhook deliveries (up to 100), oldest first."""
        with self._lock:
            return list(self._deliveries)

    def sign_webhook(self, instance_id: str, event_type: str, data: dict[str, Any] | None = None) -> str:
        """The body Wix would POST for this event about the site: a signed JWT (not sent)."""
        site = self.site(instance_id)
        return self._sender().sign(
            event_type,
            site.instance_id,
            data or {},
            account_id=site.account_id,
            site_id=site.site_id,
            user_id=site.account_id,  # the site owner acted; Wix sends their user id
        )

    def send_webhook(
        self, instance_id: str, event_type: str, data: dict[str, Any] | None = None
    ) -> WebhookDelivery | None:
        """Sign and POST one App Instance event to :attr:`webhook_url` (``None`` without one)."""
        if self._webhook_url is None:
            return None
        body = self.sign_webhook(instance_id, event_type, data)
        delivery = self._sender().deliver(event_type, self.site(instance_id).instance_id, body)
        if delivery is not None:
            with self._lock:
                self._deliveries.append(delivery)
        return delivery

    def _event(self, instance_id: str, event_type: str, data: dict[str, Any]) -> WebhookDelivery | None:
        return self.send_webhook(instance_id, event_type, data) if self._webhook_url else None

    def duplicate_site(self, instance_id: str, *, new_instance_id: str | None = None) -> str:
        """Duplicate a site, as a site owner does on Wix: a new instance (and site id) whose
        ``originInstanceId`` names the original, ``copiedFromTemplate`` true; sends its
        ``AppInstalled`` (with ``originInstanceId``) and returns its id."""
        original = self.site(instance_id)
        with self._lock:
            copy = dataclasses.replace(
                original,
                instance_id=new_instance_id or str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                site_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                origin_instance_id=original.instance_id,
                copied_from_template=True,
                installed=True,
                permissions=list(original.permissions),
                installed_wix_apps=list(original.installed_wix_apps),
                body=None,
            )
            new_id = self._store(copy)
        self._event(new_id, "AppInstalled", {"appId": self.app_id, "originInstanceId": original.instance_id})
        return new_id

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
        """``/_emulator/...`` (:data:`CONTROL_ENDPOINTS`): a wrong body is a 400 naming the expected one."""
        parts = path.strip("/").split("/")[1:]
        for endpoint in CONTROL_ENDPOINTS:
            captured = endpoint.matches(method, parts)
            if captured is None:
                continue
            iid: str | None = None
            if captured:
                try:
                    iid = self.site(captured[0]).instance_id
                except (KeyError, ValueError):
                    message = f"no site with instance id {captured[0]!r}"
                    return self._reply(404, {"message": message, "details": {}})
            try:
                body = parse_body(endpoint, raw)
            except BadBody as exc:
                return self._reply(400, {"message": str(exc), "details": {}})
            try:
                return self._reply(200, self._run_control(endpoint, iid, body))
            except (KeyError, ValueError, TypeError) as exc:
                expects = f" expects {endpoint.body}" if endpoint.body else ""
                message = f"{endpoint.method} {endpoint.path}{expects}: {exc}"
                return self._reply(400, {"message": message, "details": {}})
        known = [f"{e.method} {e.path}" for e in CONTROL_ENDPOINTS]
        message = "unknown control path; known: " + ", ".join(known)
        return self._reply(404, {"message": message, "details": {}})

    def _run_control(
        self, endpoint: ControlEndpoint, iid: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Perform one validated control request; the answer's JSON body."""
        route = f"{endpoint.method} {endpoint.path.removeprefix('/_emulator')}"
        if route == "GET /endpoints":
            return {"endpoints": [{"method": e.method, "path": e.path, "body": e.body, "effect": e.effect}
                                  for e in CONTROL_ENDPOINTS]}  # fmt: skip
        if route == "GET /stats":
            return {"counts": self.counts}
        if route == "POST /reset":
            self.reset_counts()
            return {}
        if route == "GET /sites":
            return {"instance_ids": self.instance_ids}
        if route == "POST /sites":
            added = self.add_site(**body)
            return {"instance_id": added, "webhook": self._last_delivery(added, "AppInstalled")}
        if route == "GET /webhooks":
            return {"url": self._webhook_url, "deliveries": [d.summary() for d in self.deliveries]}
        if route == "POST /webhooks":
            sent = self.send_webhook(body["instance_id"], body["event_type"], body.get("data"))
            return {"webhook": sent.summary() if sent is not None else None}
        if route == "POST /overrides/clear":
            self.clear_overrides()
            return {}
        if route == "POST /tokens":
            instance_id = body.pop("instance_id")
            return {"token": self.mint_token(instance_id, **body)}
        if route == "POST /outage":
            self.set_outage(body["kind"])
            return {}
        if route == "POST /faults":
            self.set_faults(**body)
            return {}
        if route == "POST /latency":
            self.set_latency(float(body["seconds"]))
            return {}
        assert iid is not None  # the rest are about one site
        if route == "GET /sites/{id}":
            return self.site(iid).to_body()
        if route == "POST /sites/{id}":
            self.update_site(iid, **body)
            return {}
        if route == "POST /sites/{id}/status":
            self.set_instance_status(iid, body.pop("status"), **body)
            return {}
        delivery: WebhookDelivery | None
        if route == "POST /sites/{id}/remove":
            delivery = self.remove_app(iid)
        elif route == "POST /sites/{id}/reinstall":
            delivery = self.reinstall_app(iid)
        elif route == "POST /sites/{id}/duplicate":
            copy = self.duplicate_site(iid, new_instance_id=body.get("instance_id"))
            return {"instance_id": copy, "webhook": self._last_delivery(copy, "AppInstalled")}
        elif route == "POST /sites/{id}/plan":
            cycle = body.get("billing_cycle", "MONTHLY")
            delivery = self.change_plan(iid, body["package_name"], billing_cycle=cycle)
        elif route == "POST /sites/{id}/cancel-plan":
            delivery = self.cancel_plan(iid)
        else:  # pragma: no cover - a CONTROL_ENDPOINTS entry without a branch here
            raise AssertionError(route)
        return {"webhook": delivery.summary() if delivery is not None else None}

    def _last_delivery(self, instance_id: str, event_type: str) -> dict[str, Any] | None:
        with self._lock:
            for delivery in reversed(self._deliveries):
                if delivery.instance_id == instance_id and delivery.event_type == event_type:
                    return delivery.summary()
        return None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
