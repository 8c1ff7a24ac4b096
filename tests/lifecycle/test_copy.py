"""A duplicated site's data: copy_from_origin / copy_pending, and the webhook that records the origin."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import Engine, create_engine, text

import tenancy
from tenancy.errors import LifecycleError
from tenancy.lifecycle import copy_from_origin, copy_pending
from tenancy.tenant_sync.events import apply_event
from tenancy.testing.postgres import Database
from tenancy.wix.webhooks import WixEvent
from tests.lifecycle.schema import counts, fingerprint, populate

ORIGIN, COPY, OTHER = uuid.UUID(int=0x0A), uuid.UUID(int=0xC0), uuid.UUID(int=0x0B)


def _installed(admin: Engine, iid: uuid.UUID, origin: uuid.UUID | None) -> None:
    payload: dict[str, object] = {"appId": "app"}
    if origin is not None:
        payload["originInstanceId"] = str(origin)
    apply_event(admin, WixEvent(event_type="AppInstalled", instance_id=iid, payload=payload))


@pytest.fixture
def origin(admin: Engine) -> Engine:
    with admin.begin() as conn:
        populate(conn, ORIGIN)
        populate(conn, OTHER, folders=1)
    return admin


def _graph(admin: Engine, iid: uuid.UUID) -> list[tuple[object, ...]]:
    """The tenant's data with generated keys replaced by what they identify (stable across a copy)."""
    with admin.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT f.name, p.name, n.body, n.amount, n.blob, n.meta::text, c.body, r.body,"
                    "  (SELECT string_agg(t.label, ',' ORDER BY t.label) FROM note_tags nt"
                    "   JOIN tags t ON t.instance_id = nt.instance_id AND t.id = nt.tag_id"
                    "   WHERE nt.instance_id = n.instance_id AND nt.note_id = n.id)"
                    " FROM notes n JOIN folders f ON f.instance_id = n.instance_id AND f.id = n.folder_id"
                    " LEFT JOIN folders p ON p.instance_id = f.instance_id AND p.id = f.parent_id"
                    " JOIN comments c ON c.instance_id = n.instance_id AND c.note_id = n.id"
                    " JOIN comments r ON r.instance_id = c.instance_id AND r.id = c.reply_to"
                    " WHERE n.instance_id = :i ORDER BY 1, 2, 3, 7"
                ),
                {"i": iid},
            )
        ]


def test_a_duplicated_site_gets_the_origins_rows_with_new_keys_and_remapped_references(
    origin: Engine,
) -> None:
    admin = origin
    with admin.connect() as conn:
        before_origin, before_other = fingerprint(conn, ORIGIN), fingerprint(conn, OTHER)
    _installed(admin, COPY, ORIGIN)

    report = copy_pending(admin)

    [result] = report.copies
    assert (result.instance_id, result.origin, result.outcome) == (COPY, ORIGIN, "copied")
    with admin.connect() as conn:
        assert counts(conn, COPY) == counts(conn, ORIGIN) == result.counts
        assert fingerprint(conn, ORIGIN) == before_origin  # the origin is only read
        assert fingerprint(conn, OTHER) == before_other
        # Generated keys are new (Identity, serial, bigserial); UUID keys are kept.
        for table in ("folders", "notes", "comments", "audit_log"):
            overlap = conn.execute(
                text(
                    f"SELECT count(*) FROM {table} a JOIN {table} b ON a.id = b.id"
                    " WHERE a.instance_id = :o AND b.instance_id = :c"
                ),
                {"o": ORIGIN, "c": COPY},
            ).scalar()
            assert overlap == 0, table
        same_tags = conn.execute(
            text(
                "SELECT count(*) FROM tags a JOIN tags b ON a.id = b.id"
                " WHERE a.instance_id = :o AND b.instance_id = :c"
            ),
            {"o": ORIGIN, "c": COPY},
        ).scalar()
        assert same_tags == 2
    assert _graph(admin, COPY) == _graph(admin, ORIGIN) != []


def test_a_second_trigger_copies_nothing(origin: Engine) -> None:
    admin = origin
    _installed(admin, COPY, ORIGIN)
    copy_pending(admin)
    with admin.connect() as conn:
        after_first = fingerprint(conn, COPY)

    _installed(admin, COPY, ORIGIN)  # Wix delivers AppInstalled again
    assert copy_pending(admin).copies == []
    assert copy_from_origin(admin, COPY).outcome == "already copied"
    with admin.connect() as conn:
        assert fingerprint(conn, COPY) == after_first


def test_skipped_tables_are_not_copied_and_a_dangling_reference_is_refused(origin: Engine) -> None:
    admin = origin
    _installed(admin, COPY, ORIGIN)
    with pytest.raises(LifecycleError, match="'note_tags' references 'tags'"):
        copy_from_origin(admin, COPY, skip_tables=["tags"])

    result = copy_from_origin(admin, COPY, skip_tables=["audit_log"])

    assert result.outcome == "copied" and "audit_log" not in result.counts
    with admin.connect() as conn:
        assert counts(conn, COPY)["audit_log"] == 0 and counts(conn, COPY)["notes"] > 0


def test_a_tenant_with_rows_of_its_own_is_not_copied_into(origin: Engine) -> None:
    admin = origin
    _installed(admin, COPY, ORIGIN)
    with admin.begin() as conn:
        conn.execute(text("INSERT INTO tags (instance_id, label) VALUES (:i, 'mine')"), {"i": COPY})

    result = copy_from_origin(admin, COPY)

    assert result.outcome == "has data"
    with admin.connect() as conn:
        assert sum(counts(conn, COPY).values()) == 1
    assert copy_pending(admin).copies == []  # recorded: not retried every sync run


def test_a_failed_copy_leaves_nothing_and_a_rerun_copies_everything(origin: Engine) -> None:
    admin = origin
    _installed(admin, COPY, ORIGIN)
    with admin.begin() as conn:  # a trigger that refuses the last table's rows: the copy fails there
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN RAISE EXCEPTION 'refused for the test'; END$$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON note_tags FOR EACH ROW EXECUTE FUNCTION refuse()")
        )
    try:
        result = copy_from_origin(admin, COPY)
        assert result.outcome == "failed" and "refused for the test" in (result.error or "")
        with admin.connect() as conn:
            assert set(counts(conn, COPY).values()) == {0}
    finally:
        with admin.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse ON note_tags"))
            conn.execute(text("DROP FUNCTION refuse()"))
    assert copy_from_origin(admin, COPY).outcome == "copied"
    assert _graph(admin, COPY) == _graph(admin, ORIGIN)


def test_a_tenant_session_of_the_copy_sees_only_its_own_rows(origin: Engine, lifecycle_db: Database) -> None:
    admin = origin
    _installed(admin, COPY, ORIGIN)
    copy_pending(admin)
    runtime = create_engine(lifecycle_db.runtime_url)
    try:
        sessions = tenancy.TenantSessionFactory(runtime, admin_engine=admin)
        with sessions.for_instance(COPY) as session:
            seen = session.execute(text("SELECT DISTINCT instance_id FROM notes")).scalars().all()
            n = session.execute(text("SELECT count(*) FROM comments")).scalar()
    finally:
        runtime.dispose()
    with admin.connect() as conn:
        assert seen == [COPY] and n == counts(conn, COPY)["comments"]


def test_sync_records_the_origin_from_get_app_instance() -> None:
    from tenancy.tenant_sync.store import tenant_values
    from tenancy.wix.types import AppInstance

    app = AppInstance.from_json({"instance": {"instanceId": str(COPY), "originInstanceId": str(ORIGIN)}})
    assert tenant_values(app)["origin_instance_id"] == ORIGIN
    garbled = AppInstance.from_json({"instance": {"instanceId": str(COPY), "originInstanceId": "nope"}})
    assert tenant_values(garbled)["origin_instance_id"] is None


_KILLED_COPY = """
import sys, uuid
from sqlalchemy import create_engine
from tenancy.lifecycle import copy_from_origin
print("start", flush=True)
copy_from_origin(create_engine(sys.argv[1]), uuid.UUID(sys.argv[2]))
print("done", flush=True)
"""


def test_a_copy_killed_mid_way_leaves_nothing_and_a_rerun_copies_everything(origin: Engine) -> None:
    admin = origin
    _installed(admin, COPY, ORIGIN)
    with admin.begin() as conn:  # the copy pauses in its last table: the kill lands mid-copy
        conn.execute(
            text(
                "CREATE FUNCTION pause() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN PERFORM pg_sleep(30); RETURN NULL; END$$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER pause AFTER INSERT ON note_tags FOR EACH STATEMENT EXECUTE FUNCTION pause()")
        )
    url = admin.url.render_as_string(hide_password=False)
    try:
        with subprocess.Popen(
            [sys.executable, "-c", _KILLED_COPY, url, str(COPY)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None and proc.stdout.readline() == "start\n"
            with admin.connect() as conn:
                for _ in range(600):  # until the copy is inside its last table
                    waiting = conn.execute(
                        text(
                            "SELECT pid FROM pg_stat_activity"
                            ' WHERE query LIKE \'INSERT INTO "public"."note_tags"%\''
                        )
                    ).scalar()
                    conn.rollback()
                    if waiting is not None:
                        break
                    time.sleep(0.05)
                assert waiting is not None
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                # The server notices a dead client only when it next talks to it: end its backend.
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": waiting})
                conn.commit()
    finally:
        with admin.begin() as conn:
            conn.execute(text("DROP TRIGGER pause ON note_tags"))
            conn.execute(text("DROP FUNCTION pause()"))
    with admin.connect() as conn:
        assert set(counts(conn, COPY).values()) == {0}
        assert (
            conn.execute(
                text("SELECT copied_from_origin_at FROM tenants WHERE instance_id = :i"), {"i": COPY}
            ).scalar()
            is None
        )

    assert [c.outcome for c in copy_pending(admin).copies] == ["copied"]
    assert _graph(admin, COPY) == _graph(admin, ORIGIN)
