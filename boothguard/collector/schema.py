"""The collector's tables, as of each schema version (migrations create them step by step).

Collector-side times (received, last_seen, alert times) are UNIX seconds as floats, which compare the
same way on SQLite and PostgreSQL; event times stay the agent's RFC 3339 strings (fixed width, so they
sort as text).

From v6, on PostgreSQL `events` is partitioned by month on `received` (see partitions.py); SQLite keeps a
plain table. The metadata here is the logical shape both share.
"""

from __future__ import annotations

import sqlalchemy as sa

LATEST = 6
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def tables(version: int = LATEST) -> sa.MetaData:
    """The schema as it stands after migration step `version`."""
    md = sa.MetaData()
    sa.Table("schema_version", md, sa.Column("version", sa.Integer, nullable=False))
    host_cols = [
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("enrolled_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=True),
        sa.Column("last_type", sa.String(128), nullable=True),
        sa.Column("last_reason", sa.String(255), nullable=True),
        sa.Column("heartbeat_seconds", sa.Float, nullable=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="new"),
        sa.Column("silent_reason", sa.String(64), nullable=True),
        # Chain state: events 1..chain_seq are stored and checked; chain_hash is the hash of chain_seq.
        sa.Column("chain_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("chain_hash", sa.String(64), nullable=False, server_default="0" * 64),
        sa.Column("max_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("hole_since", sa.Float, nullable=True),
        sa.Column("chain_status", sa.String(32), nullable=False, server_default="ok"),
        sa.Column("chain_detail", sa.String(255), nullable=True),
        sa.Column("away", sa.Boolean, nullable=True),
        sa.Column("locked", sa.Boolean, nullable=True),
    ]
    if version >= 2:
        host_cols.append(sa.Column("spool_backlog", sa.BigInteger, nullable=True))
    if version >= 4:  # the labels it enrolled with (groups match by label)
        host_cols.append(sa.Column("labels", sa.JSON, nullable=True))
    if version >= 6:  # what the booths page shows, kept on the row by ingest instead of read from events
        host_cols += [
            sa.Column("last_time", sa.String(24), nullable=True),  # agent time of the latest event
            sa.Column("usb_mode", sa.String(32), nullable=True),
            sa.Column("watcher_state", sa.String(16), nullable=True),
            sa.Column("watcher_since", sa.String(24), nullable=True),
            sa.Column("watcher_reason", sa.String(255), nullable=True),
        ]
    hosts_t = sa.Table("hosts", md, *host_cols)
    if version >= 6:  # the booths page's order (and keyset)
        sa.Index("ix_hosts_name_id", hosts_t.c.name, hosts_t.c.id)
    # v5, store once and retention: `raw` (the line as received, which the hash covers) is the one copy;
    # `data` is derived from it (older rows keep both until compacted). A skeleton (`compacted` set) keeps
    # the chain link (seq, id, type, time, prev_hash, hash) and nothing else.
    store_once = version >= 5
    event_cols: list[sa.schema.SchemaItem] = [
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("host_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("time", sa.String(24), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("user", sa.String(256), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=store_once),
        sa.Column("raw", sa.Text, nullable=store_once),
        sa.Column("received", sa.Float, nullable=False),
    ]
    if store_once:
        event_cols.append(sa.Column("compacted", sa.Float, nullable=True))
    events = sa.Table(
        "events", md, *event_cols, sa.UniqueConstraint("host_id", "seq", name="uq_events_host_seq")
    )
    if version < 6:
        sa.Index("ix_events_time", events.c.time)
    if 2 <= version < 6:
        sa.Index("ix_events_type", events.c.type)
    if version >= 6:  # the events search, the timeline and the API: an equality then event time
        # (time, type): the newest-first search, and the per-hour chart as an index-only range scan
        sa.Index("ix_events_time_type", events.c.time, events.c.type)
        sa.Index("ix_events_host_time", events.c.host_id, events.c.time)
        sa.Index("ix_events_type_time", events.c.type, events.c.time)
        sa.Index("ix_events_user_time", events.c.user, events.c.time)
    alert_cols: list[sa.schema.SchemaItem] = [
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("host_id", sa.String(128), nullable=False),
        sa.Column("host_name", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("last_notified", sa.Float, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("seq_from", sa.BigInteger, nullable=True),
        sa.Column("seq_to", sa.BigInteger, nullable=True),
        sa.Column("acked_by", sa.String(128), nullable=True),
        sa.Column("acked_at", sa.Float, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolved_at", sa.Float, nullable=True),
    ]
    if version >= 4:  # who the alert is about, for titles rendered per viewer's language
        alert_cols.append(sa.Column("user", sa.String(256), nullable=True))
    alerts = sa.Table("alerts", md, *alert_cols)
    # One unresolved alert per group, even with several collector processes.
    sa.Index(
        "ix_alerts_active_group",
        alerts.c.group_key,
        unique=True,
        sqlite_where=alerts.c.state != "resolved",
        postgresql_where=alerts.c.state != "resolved",
    )
    sa.Table(
        "commands",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host_id", sa.String(128), nullable=False, index=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("delivered_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_delivered", sa.Float, nullable=True),
        sa.Column("acked_at", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    )
    sa.Table(
        "users",
        md,
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    sa.Table(
        "audit_log",
        md,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    if version >= 2:
        sa.Table(
            "api_sessions",
            md,
            sa.Column("token_hash", sa.String(64), primary_key=True),
            sa.Column("user", sa.String(128), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
    if version >= 3:
        _policy_tables(md)
    if version >= 5:  # how far each retention class has looked (events.pk), under which class rules
        sa.Table(
            "retention_cursors",
            md,
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("after_pk", sa.BigInteger, nullable=False),
            sa.Column("rules", sa.String(64), nullable=False),
        )
    return md


def _policy_tables(md: sa.MetaData) -> None:
    """v3, central policy: groups, their versioned policies, explicit membership, what each booth applied."""
    sa.Table(
        "host_groups",
        md,
        sa.Column("name", sa.String(128), primary_key=True),
        # How booths join besides explicit assignment: an enrollment label, or an fnmatch pattern on the name.
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("name_pattern", sa.String(255), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    sa.Table(
        "policies",
        md,
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("published", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    sa.Table(
        "group_members",
        md,
        sa.Column("host_id", sa.String(128), primary_key=True),
        sa.Column("group_name", sa.String(128), nullable=False),
    )
    sa.Table(
        "host_policy",
        md,
        sa.Column("host_id", sa.String(128), primary_key=True),
        sa.Column("group_name", sa.String(128), nullable=True),
        sa.Column("applied_version", sa.Integer, nullable=True),
        sa.Column("applied_hash", sa.String(64), nullable=True),
        sa.Column("rejected_version", sa.Integer, nullable=True),
        sa.Column("rejected_reason", sa.String(255), nullable=True),
        sa.Column("reported_at", sa.Float, nullable=True),
    )


META = tables(LATEST)
T = META.tables
hosts = T["hosts"]
events = T["events"]
alerts = T["alerts"]
commands = T["commands"]
users = T["users"]
audit_log = T["audit_log"]
api_sessions = T["api_sessions"]
schema_version = T["schema_version"]
host_groups = T["host_groups"]
policies = T["policies"]
group_members = T["group_members"]
host_policy = T["host_policy"]
retention_cursors = T["retention_cursors"]
