"""``tenancy check``: objects through which a tenant's statement runs code with other rights.

A tenant's statement (as the runtime role) can make PostgreSQL run code it did not write:

- a **rule** on a table runs its actions with the table owner's rights, and the owner skips
  row-level security (BYPASSRLS): ``DO ALSO DELETE FROM other_table`` deletes every tenant's
  rows. Every rule on a tenant table, or on a relation the runtime role can use, is a finding;
- a ``SECURITY DEFINER`` function runs as its owner. Reached from a trigger (which fires
  whether or not the runtime role may EXECUTE the function), a column default, a generated
  column, a check constraint, a domain's constraint or default (of a column's type, through
  domains over domains), an index expression or predicate, a policy, a view or materialized
  view, or an event trigger, of a tenant table or of a relation the runtime role can use; and
  any operator or cast (outside ``pg_catalog``) whose function reaches one.

"Reaches" follows, from the function an object depends on: dependencies PostgreSQL records
(``pg_depend``: SQL-standard ``BEGIN ATOMIC`` bodies, aggregates' support functions, operators'
functions) and, for ``sql`` and ``plpgsql`` bodies kept as text, the name of another function
of a non-system schema written in the body (a name match, so an unrelated function of the same
name counts too; dynamic SQL that builds a name is not seen). Functions in ``pg_catalog`` and
``information_schema`` are not followed, and tenancy's own ``current_instance_id()`` and
``register_tenant(text, text)`` are exempt (they exist to run as the owner, and are checked
by the other findings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, text

from tenancy.postgres.binding import FUNCTION, REGISTER_FUNCTION
from tenancy.postgres.findings import Finding

__all__ = ["owner_code_findings"]

_SYSTEM = "('pg_catalog', 'information_schema', 'pg_toast')"

# Relations a tenant's statement can touch: the tenant tables, and whatever of the schema the
# runtime role holds a privilege on (views over tenant tables, tables granted with --also).
_RELATIONS = """
WITH RECURSIVE rel AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = :s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND (c.relname = ANY(:t) OR has_table_privilege(:r, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'))
), dom(oid) AS (
  SELECT t.oid FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid IN (SELECT oid FROM rel) AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype = 'd'
  UNION SELECT b.oid FROM dom JOIN pg_type x ON x.oid = dom.oid JOIN pg_type b ON b.oid = x.typbasetype
  WHERE b.typtype = 'd'
), obj(classid, objid, label) AS (
  SELECT 'pg_attrdef'::regclass, ad.oid, format(CASE WHEN a.attgenerated <> '' THEN 'generated column %s.%I'
    ELSE 'default of column %s.%I' END, ad.adrelid::regclass, a.attname)
  FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
  WHERE ad.adrelid IN (SELECT oid FROM rel)
  UNION ALL SELECT 'pg_constraint'::regclass, con.oid, CASE WHEN con.contypid <> 0
    THEN format('constraint %I on domain %s', con.conname, con.contypid::regtype) END FROM pg_constraint con
  WHERE con.conrelid IN (SELECT oid FROM rel) OR con.contypid IN (SELECT oid FROM dom)
  UNION ALL SELECT 'pg_type'::regclass, oid, NULL FROM dom
  UNION ALL SELECT 'pg_class'::regclass, x.indexrelid, NULL FROM pg_index x
  WHERE x.indrelid IN (SELECT oid FROM rel)
  UNION ALL SELECT 'pg_policy'::regclass, p.oid, NULL FROM pg_policy p
  WHERE p.polrelid IN (SELECT oid FROM rel)
  UNION ALL SELECT 'pg_trigger'::regclass, g.oid, NULL FROM pg_trigger g
  WHERE g.tgrelid IN (SELECT oid FROM rel) AND NOT g.tgisinternal
  UNION ALL SELECT 'pg_rewrite'::regclass, w.oid, CASE WHEN w.rulename = '_RETURN' THEN format('%s %s',
    CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, w.ev_class::regclass) END
  FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class WHERE w.ev_class IN (SELECT oid FROM rel)
  UNION ALL SELECT 'pg_event_trigger'::regclass, e.oid, NULL FROM pg_event_trigger e
)
"""

# Every function an object of `obj` calls: directly, or as an operator's function.
_CALLS_SQL = (
    _RELATIONS
    + """
SELECT DISTINCT coalesce(o.label, pg_describe_object(o.classid, o.objid, 0)) AS what,
  CASE WHEN d.refclassid = 'pg_operator'::regclass THEN op.oprcode::oid ELSE d.refobjid END AS fn
FROM obj o JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.objid
LEFT JOIN pg_operator op ON d.refclassid = 'pg_operator'::regclass AND op.oid = d.refobjid
WHERE d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
"""
)

_RULES_SQL = (
    _RELATIONS
    + """
SELECT format('rule %I on %s', w.rulename, w.ev_class::regclass), w.rulename, w.ev_class::regclass::text
FROM pg_rewrite w WHERE w.ev_class IN (SELECT oid FROM rel) AND w.rulename <> '_RETURN' ORDER BY 1
"""
)

_FUNCTIONS_SQL = f"""
SELECT p.oid, p.oid::regprocedure::text, p.proname, p.prosecdef, o.rolname,
  CASE WHEN l.lanname IN ('sql', 'plpgsql') AND {{text_body}} THEN p.prosrc END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles o ON o.oid = p.proowner
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN {_SYSTEM}
  AND p.oid NOT IN (SELECT f FROM unnest(ARRAY[to_regprocedure(:verify), to_regprocedure(:register)]) AS f
                    WHERE f IS NOT NULL)
"""

_EDGES_SQL = """
SELECT d.objid, CASE WHEN d.refclassid = 'pg_operator'::regclass THEN op.oprcode::oid ELSE d.refobjid END
FROM pg_depend d LEFT JOIN pg_operator op ON d.refclassid = 'pg_operator'::regclass AND op.oid = d.refobjid
WHERE d.classid = 'pg_proc'::regclass AND d.objid = ANY(:f)
  AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
"""

_OPERATORS_AND_CASTS_SQL = f"""
SELECT format('operator %s', o.oid::regoperator), o.oprcode::oid FROM pg_operator o
JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname NOT IN {_SYSTEM} AND o.oprcode::oid = ANY(:f)
UNION ALL
SELECT format('cast (%s AS %s)', c.castsource::regtype, c.casttarget::regtype), c.castfunc FROM pg_cast c
WHERE c.castfunc = ANY(:f)
ORDER BY 1
"""


class _Functions:
    """The functions of non-system schemas and which SECURITY DEFINER one each reaches."""

    def __init__(self, conn: Connection) -> None:
        # PostgreSQL 14 added SQL-standard bodies (prosqlbody), whose calls pg_depend records.
        modern = int(conn.execute(text("SHOW server_version_num")).scalar_one()) >= 140000
        sql = _FUNCTIONS_SQL.format(text_body="p.prosqlbody IS NULL" if modern else "true")
        rows = conn.execute(
            text(sql), {"verify": f"{FUNCTION}()", "register": f"{REGISTER_FUNCTION}(text, text)"}
        ).all()
        self.signature: dict[int, str] = {r[0]: r[1] for r in rows}
        self.owner: dict[int, str] = {r[0]: r[4] for r in rows}
        self.definer = {r[0] for r in rows if r[3]}
        self.calls: dict[int, set[int]] = {oid: set() for oid in self.signature}
        for caller, callee in conn.execute(text(_EDGES_SQL), {"f": list(self.signature)}):
            if callee in self.signature and callee != caller:
                self.calls[caller].add(callee)
        # Text bodies keep no dependencies: a function named in one may be called by it.
        by_name: dict[str, list[int]] = {}
        for oid, _, name, *_ in rows:
            by_name.setdefault(name.lower(), []).append(oid)
        words = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
        for oid, *_, body in rows:
            for word in {w.lower() for w in words.findall(body or "")}:
                self.calls[oid].update(o for o in by_name.get(word, ()) if o != oid)
        self._reached: dict[int, list[int] | None] = {}

    def path_to_definer(self, oid: int) -> list[int] | None:
        """The calls from *oid* to a SECURITY DEFINER function (*oid* first), or ``None``."""
        if oid not in self.signature:
            return None
        return self._walk(oid, set())

    def _walk(self, oid: int, seen: set[int]) -> list[int] | None:
        if oid in self._reached:
            return self._reached[oid]
        if oid in self.definer:
            self._reached[oid] = [oid]
            return [oid]
        seen.add(oid)
        found = None
        for callee in sorted(self.calls[oid]):
            if callee in seen:
                continue
            tail = self._walk(callee, seen)
            if tail is not None:
                found = [oid, *tail]
                break
        seen.discard(oid)
        if found is not None or not seen:  # a cycle-free answer is safe to remember
            self._reached[oid] = found
        return found

    def describe(self, path: Sequence[int]) -> str:
        definer = path[-1]
        through = "".join(f" through {self.signature[oid]}" for oid in path[:-1])
        return (
            f"calls SECURITY DEFINER function {self.signature[definer]}{through}, which runs as "
            f"{self.owner[definer]!r}: a tenant's statement that fires it runs that code with those "
            "rights (a trigger even without EXECUTE for the runtime role); make it SECURITY INVOKER "
            f"(ALTER FUNCTION {self.signature[definer]} SECURITY INVOKER) or stop calling it here"
        )


def owner_code_findings(conn: Connection, role: str, schema: str, tables: Sequence[str]) -> list[Finding]:
    """Rules, and objects reaching a ``SECURITY DEFINER`` function, that a tenant statement runs."""
    params: Mapping[str, object] = {"r": role, "s": schema, "t": list(tables)}
    if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r)"), params).scalar():
        return []
    found = [
        Finding(
            "rule",
            subject,
            "a rule runs its actions with the table owner's rights (who skips row-level security) on "
            f"every tenant's statement, so it can reach other tenants' rows: DROP RULE {name} ON {table}"
            " (a trigger whose function is SECURITY INVOKER does the same as the tenant)",
        )
        for subject, name, table in conn.execute(text(_RULES_SQL), params)
    ]
    functions = _Functions(conn)
    if not functions.definer:
        return found
    reached: dict[str, list[int]] = {}
    for what, fn in conn.execute(text(_CALLS_SQL), params):
        path = functions.path_to_definer(fn)
        if path is not None and (what not in reached or len(path) < len(reached[what])):
            reached[what] = path
    for what in sorted(reached):
        found.append(Finding("definer", what, functions.describe(reached[what])))
    for what, fn in conn.execute(text(_OPERATORS_AND_CASTS_SQL), {"f": list(functions.signature)}):
        path = functions.path_to_definer(fn)
        if path is not None:
            found.append(Finding("definer", what, functions.describe(path)))
    return found
