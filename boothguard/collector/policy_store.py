"""Groups and their versioned policies on the collector; what each booth reported applying.

A booth's group: its explicit assignment (API/dashboard) first, else the group with the highest priority
whose fnmatch `name_pattern` matches the booth's name. A policy is refused unless the agent's own section
models accept it, so a published policy is one the agent would load; every change is audited with a diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard.collector import db, policy_directory
from boothguard.collector.audit import audit
from boothguard.collector.policy_directory import Matcher
from boothguard.collector.schema import group_members, host_groups, host_policy, hosts, policies
from boothguard.config_override import OVERRIDE_KEY
from boothguard.policy import PolicyProblem, policy_hash, problems


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per dotted key (section.key), and `local_override` whole: [before, after]; None where absent."""
    out: dict[str, Any] = {}
    for section in sorted(set(old) | set(new)):
        if section == OVERRIDE_KEY:  # a list of keys, not a section: diffed as one value
            if old.get(section) != new.get(section):
                out[section] = [old.get(section), new.get(section)]
            continue
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out[f"{section}.{key}"] = [a.get(key), b.get(key)]
    return out


def put_group(
    engine: Engine, name: str, *, name_pattern: str | None, priority: int, actor: str, now: float,
    label: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    with db.write(engine) as conn:
        old = conn.execute(sa.select(host_groups).where(host_groups.c.name == name)).mappings().first()
        row = {"name_pattern": name_pattern, "label": label, "priority": priority}
        if old is None:
            conn.execute(sa.insert(host_groups).values(name=name, created_at=now, **row))
        else:
            conn.execute(sa.update(host_groups).where(host_groups.c.name == name).values(**row))
        before = {} if old is None else {k: old[k] for k in ("name_pattern", "label", "priority")}
        audit(conn, actor, "group.put", name, {"diff": diff({"group": before}, {"group": row})}, now=now)
    policy_directory.changed(engine)
    return {"name": name, **row}


def assign(engine: Engine, host_id: str, group: str | None, *, actor: str, now: float) -> bool:
    """Put a booth in a group (None: back to pattern matching); False if host or group is unknown."""
    with db.write(engine) as conn:
        if conn.execute(sa.select(hosts.c.id).where(hosts.c.id == host_id)).first() is None:
            return False
        if group is not None and _group(conn, group) is None:
            return False
        old = conn.execute(
            sa.select(group_members.c.group_name).where(group_members.c.host_id == host_id)
        ).scalar()
        conn.execute(sa.delete(group_members).where(group_members.c.host_id == host_id))
        if group is not None:
            conn.execute(sa.insert(group_members).values(host_id=host_id, group_name=group))
        audit(conn, actor, "group.assign", host_id, {"diff": {"group": [old, group]}}, now=now)
    policy_directory.changed(engine)
    return True


def put_policy(
    engine: Engine, group: str, body: object, *, actor: str, now: float
) -> dict[str, Any] | list[PolicyProblem] | None:
    """Validate and publish the next version; the problems if invalid, None if no such group."""
    found = problems(body)
    if found:
        return found
    assert isinstance(body, dict)
    digest = policy_hash(body)
    with db.write(engine) as conn:
        if _group(conn, group) is None:
            return None
        last = _latest(conn, group)
        version = 1 if last is None else int(last["version"]) + 1
        conn.execute(
            sa.insert(policies).values(
                group_name=group,
                version=version,
                body=body,
                hash=digest,
                created_at=now,
                created_by=actor,
                published=True,
            )
        )
        change = diff({} if last is None else dict(last["body"]), body)
        audit(
            conn,
            actor,
            "policy.publish",
            group,
            {"version": version, "hash": digest, "diff": change},
            now=now,
        )
    policy_directory.changed(engine)
    return {"group": group, "version": version, "hash": digest, "body": body}


def _group(conn: Connection, name: str) -> Any:
    return conn.execute(sa.select(host_groups).where(host_groups.c.name == name)).mappings().first()


def _latest(conn: Connection, group: str) -> Any:
    q = (
        sa.select(policies)
        .where(policies.c.group_name == group, policies.c.published.is_(True))
        .order_by(policies.c.version.desc())
        .limit(1)
    )
    return conn.execute(q).mappings().first()


def group_of(conn: Connection, host_id: str) -> str | None:
    explicit = conn.execute(
        sa.select(group_members.c.group_name).where(group_members.c.host_id == host_id)
    ).scalar()
    if explicit is not None:
        return str(explicit)
    host = conn.execute(sa.select(hosts.c.name, hosts.c.labels).where(hosts.c.id == host_id)).first()
    if host is None:
        return None
    return Matcher(conn.execute(sa.select(host_groups)).mappings()).group(None, str(host.name), host.labels)


def _latest_versions(conn: Connection) -> dict[str, int]:
    """Each group's published version, in one query."""
    q = (
        sa.select(policies.c.group_name, sa.func.max(policies.c.version))
        .where(policies.c.published.is_(True))
        .group_by(policies.c.group_name)
    )
    return {str(g): int(v) for g, v in conn.execute(q)}


def for_host(engine: Engine, host_id: str) -> dict[str, Any] | None:
    """The policy a booth should run, or None when its group has none: read now, uncached (the ingest
    answer uses `policy_directory`)."""
    with db.read(engine) as conn:
        group = group_of(conn, host_id)
        row = None if group is None else _latest(conn, group)
        if row is None:
            return None
        return {
            "group": group,
            "version": int(row["version"]),
            "hash": row["hash"],
            "body": dict(row["body"]),
        }


def get_policy(engine: Engine, group: str) -> dict[str, Any] | None:
    with db.read(engine) as conn:
        if _group(conn, group) is None:
            return None
        row = _latest(conn, group)
        versions = conn.execute(
            sa.select(policies.c.version).where(policies.c.group_name == group).order_by(policies.c.version)
        ).scalars()
        return {
            "group": group,
            "version": None if row is None else int(row["version"]),
            "hash": None if row is None else row["hash"],
            "body": None if row is None else dict(row["body"]),
            "versions": [int(v) for v in versions],
        }


def record_report(engine: Engine, host_id: str, event: dict[str, Any], *, now: float) -> None:
    """Remember the last agent.policy_applied / agent.config_rejected a booth sent."""
    data = event.get("data") or {}
    version = data.get("version")
    values: dict[str, Any] = {"reported_at": now}
    if event.get("type") == "agent.policy_applied":
        values |= {"applied_version": version, "applied_hash": str(data.get("hash"))[:64]}
        values |= {"group_name": data.get("group"), "rejected_version": None, "rejected_reason": None}
    else:
        values |= {"rejected_version": version, "rejected_reason": str(data.get("reason"))[:255]}
    with db.write(engine) as conn:
        updated = conn.execute(
            sa.update(host_policy).where(host_policy.c.host_id == host_id).values(**values)
        )
        if not updated.rowcount:
            conn.execute(sa.insert(host_policy).values(host_id=host_id, **values))


def status(engine: Engine, host_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Per booth (of `host_ids`, or all): its group, the version it should run, the one it reported, and
    whether it is behind.

    Three queries whatever the fleet's size: booths joined with their assignment and report, the groups,
    and each group's latest version; the groups are matched here (fnmatch is not portable SQL).
    """
    columns = (
        *(hosts.c.id, hosts.c.name, hosts.c.labels, group_members.c.group_name.label("explicit")),
        *(host_policy.c.applied_version, host_policy.c.rejected_version, host_policy.c.rejected_reason),
    )
    q = (
        sa.select(*columns)
        .select_from(
            hosts.outerjoin(group_members, group_members.c.host_id == hosts.c.id).outerjoin(
                host_policy, host_policy.c.host_id == hosts.c.id
            )
        )
        .order_by(hosts.c.name, hosts.c.id)
    )
    if host_ids is not None:  # one page of the booths board, not the whole fleet
        q = q.where(hosts.c.id.in_(list(host_ids)))
    with db.read(engine) as conn:
        rows = conn.execute(q).all()
        matcher = Matcher(conn.execute(sa.select(host_groups)).mappings())
        latest = _latest_versions(conn)
    out = []
    for row in rows:
        group = matcher.group(row.explicit, str(row.name), row.labels)
        want = None if group is None else latest.get(group)
        out.append(
            {
                "host_id": row.id,
                "name": row.name,
                "group": group,
                "policy_version": want,
                "applied_version": row.applied_version,
                "rejected_version": row.rejected_version,
                "rejected_reason": row.rejected_reason,
                "behind": want is not None and row.applied_version != want,
            }
        )
    return out


def groups(engine: Engine) -> list[dict[str, Any]]:
    """Every group with how booths join it and its current policy version (the dashboard's policy page)."""
    with db.read(engine) as conn:
        rows = conn.execute(sa.select(host_groups).order_by(host_groups.c.name)).mappings().all()
        out = []
        for g in rows:
            latest = _latest(conn, g["name"])
            out.append(
                {
                    "name": g["name"],
                    "label": g["label"],
                    "name_pattern": g["name_pattern"],
                    "priority": int(g["priority"]),
                    "version": None if latest is None else int(latest["version"]),
                    "hash": None if latest is None else latest["hash"],
                    "created_by": None if latest is None else latest["created_by"],
                }
            )
    return out
