"""Invariant 8 for the Wix side: no secret or token in messages, tracebacks, logs or reprs."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import pytest

from tenancy.emulator import Emulator
from tenancy.errors import TenancyError
from tenancy.wix.client import WixClient
from tenancy.wix.resolver import TokenResolver
from tests.wix_helpers import client_for

SECRET = "emulator-only-secret-0123456789abcdef"


def _formatted(exc: BaseException) -> str:
    """Everything a logger or a crash report could print about an exception."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(vars(exc)) + repr(exc.args)


def test_no_secret_or_token_leaks_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    """Across failures of every kind, the secret and tokens appear in no error, log or repr."""
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []
    with Emulator(sites=2, app_secret=SECRET, timeout_delay=1.0, retry_after=0) as emu:
        a, b = emu.instance_ids
        user_token = emu.mint_token(a)
        other_app_token = emu.mint_token(a, client_id="another-app")

        def attempt(call: Callable[[], object]) -> None:
            try:
                call()
            except TenancyError as exc:
                failures.append(exc)

        with client_for(emu, max_retries=1, timeout=0.3) as client:
            resolver = TokenResolver(client)
            resolver.resolve(user_token)
            client.get_app_instance(a)
            # Wix echoing what it was sent, in an error description.
            emu.respond_with(
                "access_token",
                status=400,
                body={"error": "invalid_request", "error_description": f"bad {SECRET} for {b}"},
                times=1,
            )
            attempt(lambda: client.get_app_instance(b))
            emu.respond_with(
                "get_app_instance",
                status=401,
                body={"message": f"token {client.app_access_token(a)} expired"},
                times=2,
            )
            attempt(lambda: client.get_app_instance(a))
            attempt(lambda: resolver.resolve(other_app_token))
            attempt(lambda: resolver.resolve("Bearer " + user_token + " x"))
            emu.respond_with("token_info", status=400, body={"error_description": user_token}, times=1)
            attempt(lambda: client.token_info(user_token))
            for kind in ("drop", "timeout", "malformed", "503", "429-retry-after"):
                emu.set_faults(rate=1.0, kinds=(kind,))
                attempt(lambda: client.token_info(user_token))
                client.forget_app_token(a)
                attempt(lambda: client.get_app_instance(a))
                emu.clear_faults()
            reprs = repr(client) + repr(resolver) + repr(resolver.resolve(user_token))
            app_tokens = {
                r.headers["authorization"] for r in emu.requests if r.endpoint == "get_app_instance"
            }
        with WixClient(emu.app_id, "wrong-" + SECRET, base_url=emu.base_url) as wrong:
            attempt(lambda: wrong.get_app_instance(a))
            reprs += repr(wrong)
    secrets = {SECRET, "wrong-" + SECRET, user_token, other_app_token, *app_tokens}
    assert len(failures) >= 14
    assert len(app_tokens) >= 2
    texts = {
        "logs": caplog.text,
        "reprs": reprs,
        **{f"error {n}": _formatted(e) for n, e in enumerate(failures)},
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret or token leaked into {where}"
    # The echoed secret was replaced, not dropped silently with the rest of the message.
    assert any("bad *** for" in str(e) for e in failures)
