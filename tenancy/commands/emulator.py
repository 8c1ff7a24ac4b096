"""``tenancy emulator``: run the local Wix API emulator until interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from tenancy.emulator import CONTROL_ENDPOINTS, FAULT_KINDS, Emulator
from tenancy.errors import ConfigurationError

NAME = "emulator"
HELP = (
    "run a local Wix (token-info, oauth2/token, apps/v1/instance, signed webhooks) on loopback "
    "and print the environment that points tenancy at it; serves until Ctrl-C or SIGTERM"
)
_CONTROL_HELP = "\n".join(endpoint.describe() for endpoint in CONTROL_ENDPOINTS)
EPILOG = f"""\
environment: none read; it prints the variables that point tenancy (and your app) at it
(WIX_API_BASE_URL, WIX_APP_ID, WIX_APP_SECRET, WIX_WEBHOOK_PUBLIC_KEY) as `export` lines

webhooks: with --webhook-url, installing, removing or changing the plan of a site through the
control API POSTs Wix's signed event (AppInstalled, AppRemoved, PaidPlanPurchased,
PaidPlanChanged, PaidPlanAutoRenewalCancelled) to that URL; each delivery is logged on stderr

control API (JSON bodies; {{id}} is an instance id; a wrong body answers 400 naming the right one):
{_CONTROL_HELP}

exit codes:
  0  stopped by Ctrl-C or SIGTERM
  2  usage error (bad option, port in use, unreadable --sites-file or --webhook-private-key)
"""
_TOKENS_BY_DEFAULT = 10  # more sites than this print tokens only with --print-tokens
_USER_TOKEN_TTL = 3600  # seconds, like the tokens Wix gives a dashboard page


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--sites", type=int, default=3, help="generated sites (default: %(default)s)")
    parser.add_argument("--sites-file", help="JSON file of sites to serve instead of generated ones")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help="comma-separated fault kinds for --fault-rate (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        help="requests per minute per instance (app tokens and Get App Instance) before 429s (Wix: 200)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for generated sites and faults")
    parser.add_argument("--app-id", help="the app id (default: generated)")
    parser.add_argument("--app-secret", help="the app secret (default: generated)")
    parser.add_argument("--token-ttl", type=int, default=14_400, help="app token lifetime in seconds")
    parser.add_argument(
        "--webhook-url",
        help="POST signed webhooks here, e.g. http://127.0.0.1:8000/webhooks/wix (default: none sent)",
    )
    parser.add_argument(
        "--webhook-private-key",
        metavar="FILE",
        help="PEM RSA private key to sign webhooks with (default: a new key each run)",
    )
    parser.add_argument(
        "--webhook-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the app (default: %(default)s)",
    )
    parser.add_argument(
        "--print-tokens",
        action="store_true",
        help=f"print a user token for every site (default: only up to {_TOKENS_BY_DEFAULT} sites)",
    )


def run(args: argparse.Namespace) -> int:
    """Start the emulator, print how to use it, serve until SIGINT/SIGTERM; exit code 0."""
    if args.sites < 0 or not 0.0 <= args.fault_rate <= 1.0:
        raise ConfigurationError("--sites must be >= 0 and --fault-rate between 0 and 1")
    if args.webhook_url is not None and not args.webhook_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"--webhook-url must start with http:// or https://, not {args.webhook_url!r}"
        )
    private_key: bytes | None = None
    if args.webhook_private_key:
        try:
            with open(args.webhook_private_key, "rb") as file:
                private_key = file.read()
        except OSError as exc:
            raise ConfigurationError(
                f"--webhook-private-key: cannot read {exc.filename}: {exc.strerror}"
            ) from None
    options = {
        "webhook_url": args.webhook_url,
        "webhook_private_key": private_key,
        "webhook_timeout": args.webhook_timeout,
        "app_id": args.app_id,
        "app_secret": args.app_secret,
        "latency": args.latency,
        "seed": args.seed,
        "token_ttl": args.token_ttl,
        "host": args.host,
        "port": args.port,
        "rate_limit": args.rate_limit,
    }
    kinds = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
    if not kinds or set(kinds) - set(FAULT_KINDS):
        raise ConfigurationError(f"--fault-kinds: choose from {', '.join(FAULT_KINDS)}")
    try:
        emulator = (
            Emulator.from_file(args.sites_file, **options)
            if args.sites_file
            else Emulator(args.sites, **options)
        )
    except (OSError, ValueError) as exc:
        what = (
            "--webhook-private-key"
            if private_key is not None and "key" in str(exc)
            else "cannot start the emulator"
        )
        raise ConfigurationError(f"{what}: {exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        if args.fault_rate > 0:
            emulator.set_faults(rate=args.fault_rate, kinds=kinds, seed=args.seed)
        ids = emulator.instance_ids
        # Shell-ready: `export` lines, everything else a comment, so pasting the block is harmless.
        say(
            f"# tenancy emulator: serving {emulator.base_url} with {len(ids)} sites for app {emulator.app_id}"
        )
        # The emulator's own dummy credentials: printing them is the point.
        say(f"export WIX_API_BASE_URL={emulator.base_url}")
        say(f"export WIX_APP_ID={emulator.app_id}")
        say(f"export WIX_APP_SECRET={emulator.app_secret}")
        # The PEM base64-encoded on one line (Settings accept both forms): safe to paste.
        say(f"export WIX_WEBHOOK_PUBLIC_KEY={emulator.webhook_public_key_b64}")
        if args.webhook_url:
            say(f"# webhooks: POST {args.webhook_url} when a site is installed, removed or changes plan")
        else:
            say("# webhooks: none sent (start with --webhook-url http://127.0.0.1:8000/webhooks/wix)")
        if not args.sites_file:
            say(f"# sites from --seed {args.seed}: the same instance ids every run (another seed, other ids)")
        if args.print_tokens or len(ids) <= _TOKENS_BY_DEFAULT:
            say(f"# user tokens (Authorization header), valid for {_USER_TOKEN_TTL // 60} minutes:")
            for iid in ids:
                say(f"# token {iid} {emulator.mint_token(iid, ttl=_USER_TOKEN_TTL)}")
        say(f'# more tokens: POST {emulator.base_url}/_emulator/tokens with {{"instance_id": ...}}')
        say(f"# control API: GET {emulator.base_url}/_emulator/endpoints (and `tenancy emulator --help`)")
        say("# ready (Ctrl-C to stop)")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emulator.stop()
    say("tenancy emulator: stopped")
    return 0


def say(line: str) -> None:
    """Print one line at once: tests and scripts read it from a pipe."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): keep serving, print nothing more. Pointing
        # stdout at /dev/null also spares the interpreter a failing flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
