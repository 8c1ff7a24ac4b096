"""Requests per second of "list notes": tenancy (token + tenant session) vs a hand-filtered session.

    python bench.py [--seconds 4] [--rounds 3] [--concurrency 8] [--json out.json]

One uvicorn process serves both endpoints of the same app on the same database:

- ``GET /notes`` — the example's endpoint: ``Authorization`` resolved by tenancy (cached after
  the first request), a tenant session on the runtime role (ORM criteria + RLS);
- ``GET /baseline/notes`` — the same query and response written the usual way without
  tenancy: a plain SQLAlchemy session on the owner role, ``WHERE instance_id = :id`` by hand,
  the instance id taken from a header with no check at all.

The load generator (this process, keep-alive connections, ``--concurrency`` threads) runs the
two in alternation, ``--rounds`` times each, and reports the median rate and the ratio. It
needs PostgreSQL (found as tenancy's test fixtures find it) and makes a throwaway database.
"""

# No `from __future__ import annotations`: FastAPI reads the baseline handler's annotations at
# run time, and NoteOut is imported inside app_factory().
import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

HERE = Path(__file__).resolve().parent
TENANTS = 20
NOTES_PER_TENANT = 20


def app_factory() -> Any:
    """The example app plus the baseline endpoint (uvicorn ``bench:app_factory --factory``)."""
    from fastapi import Depends, Header
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from notes_app.main import NoteOut, create_app, log
    from notes_app.models import Note

    app = create_app()
    plain = create_engine(os.environ["TENANCY_ADMIN_DATABASE_URL"])

    def get_db() -> Iterator[Session]:  # FastAPI's tutorial dependency, as apps without tenancy write it
        with Session(plain) as db:
            yield db

    @app.get("/baseline/notes")
    def baseline_notes(
        db: Annotated[Session, Depends(get_db)], x_instance_id: str = Header()
    ) -> list[NoteOut]:
        query = select(Note).where(Note.instance_id == uuid.UUID(x_instance_id)).order_by(Note.id)
        notes = db.scalars(query).all()
        log.info("listed %d notes", len(notes))
        return [NoteOut(id=n.id, notebook_id=n.notebook_id, title=n.title, body=n.body) for n in notes]

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _migrate_and_seed(admin_url: str, runtime_role: str, instance_ids: list[str]) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from notes_app.models import Note, Notebook

    engine = create_engine(admin_url)
    cfg = Config(str(HERE / "alembic.ini"))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        cfg.attributes["runtime_role"] = runtime_role
        command.upgrade(cfg, "heads")
    with engine.begin() as conn:
        for iid in map(uuid.UUID, instance_ids):
            book = conn.execute(
                Notebook.__table__.insert().values(instance_id=iid, name="inbox").returning(Notebook.id)
            ).scalar_one()
            conn.execute(
                Note.__table__.insert(),
                [
                    {"instance_id": iid, "notebook_id": book, "title": f"note {n}", "body": "x" * 80}
                    for n in range(NOTES_PER_TENANT)
                ],
            )
    engine.dispose()


def _load(url: str, headers: list[dict[str, str]], seconds: float, concurrency: int) -> float:
    """Requests per second of GET *url* from *concurrency* keep-alive threads for *seconds*."""
    import requests

    done = [0] * concurrency
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(n: int) -> None:
        with requests.Session() as http:
            start.wait()
            i = n
            while time.perf_counter() < stop_at[0]:
                answer = http.get(url, headers=headers[i % len(headers)], timeout=30)
                if answer.status_code != 200 or len(answer.json()) != NOTES_PER_TENANT:
                    errors.append(f"{answer.status_code} {answer.text[:100]}")
                    return
                done[n] += 1
                i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"bad answers: {errors[:3]}")
    return sum(done) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one measurement (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per variant (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    import requests

    from tenancy.emulator import Emulator
    from tenancy.testing.postgres import fresh_database

    with Emulator(sites=TENANTS, seed=1) as emu, fresh_database(prefix="notes_bench") as db:
        _migrate_and_seed(db.admin_url, db.runtime, emu.instance_ids)
        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db.runtime_url,
            "TENANCY_ADMIN_DATABASE_URL": db.admin_url,
            "WIX_APP_ID": emu.app_id,
            "WIX_APP_SECRET": emu.app_secret,
            "WIX_API_BASE_URL": emu.base_url,
            "PYTHONPATH": str(HERE),
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench:app_factory",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=HERE,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"{base}/docs", timeout=1)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            tokens = [{"Authorization": f"Bearer {emu.mint_token(iid)}"} for iid in emu.instance_ids]
            plain = [{"X-Instance-Id": iid} for iid in emu.instance_ids]
            variants = {"tenancy": (f"{base}/notes", tokens), "baseline": (f"{base}/baseline/notes", plain)}
            for url, headers in variants.values():  # warm up: tokens resolved and cached, pools full
                _load(url, headers, 1.0, args.concurrency)
            token_info_calls = emu.count("token_info")
            rates: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, (url, headers) in variants.items():
                    rates[name].append(_load(url, headers, args.seconds, args.concurrency))
            extra_calls = emu.count("token_info") - token_info_calls
        finally:
            server.terminate()
            server.wait(timeout=30)

    median = {name: statistics.median(values) for name, values in rates.items()}
    ratio = median["tenancy"] / median["baseline"]
    print(
        f"list notes ({TENANTS} tenants x {NOTES_PER_TENANT} notes, {args.concurrency} client threads, "
        f"{args.rounds} x {args.seconds:g} s each, interleaved)"
    )
    print(f"{'variant':<10} {'req/s (median)':>15} {'rounds':>30}")
    for name, values in rates.items():
        print(f"{name:<10} {median[name]:>15.0f} {' '.join(f'{v:.0f}' for v in values):>30}")
    print(
        f"ratio tenancy/baseline: {ratio:.3f} (target >= 0.9); "
        f"Token Info calls while measuring: {extra_calls}"
    )
    result = {
        "benchmark": "notes list: tenancy vs hand-filtered session",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "tenants": TENANTS,
        "notes_per_tenant": NOTES_PER_TENANT,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "rounds": rates,
        "median_rps": median,
        "ratio": ratio,
        "token_info_calls_while_measuring": extra_calls,
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
