"""Incident export: one host's or user's timeline over a time range, with the chain re-verified.

The material for an APPI leak report (漏えい等報告): what happened, when, on which booth, by whom, and
whether the record itself is intact. Rendered as CSV, JSON, or a printable page (by the routes).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from boothguard.collector.retention_export import skeleton_spans
from boothguard.collector.web import queries, reports
from boothguard.collector.web.queries import EventFilter
from boothguard.collector.web.reports import ChainReport
from boothguard.events import format_time

CSV_FIELDS = (
    "time",
    "host_id",
    "host_name",
    "seq",
    "type",
    "severity",
    "user",
    "data",
    "id",
    "hash",
    "prev_hash",
)


@dataclass(frozen=True)
class Incident:
    filter: EventFilter
    generated_at: str
    generated_by: str
    events: list[dict[str, Any]]
    truncated: bool
    alerts: list[dict[str, Any]]
    chains: list[ChainReport]

    @property
    def chain_ok(self) -> bool:
        return all(c.ok for c in self.chains)

    def counts_by_type(self) -> list[tuple[str, int]]:
        return sorted(Counter(e["type"] for e in self.events).items(), key=lambda kv: (-kv[1], kv[0]))

    def as_json(self) -> dict[str, Any]:
        f = self.filter
        return {
            "kind": "boothguard.incident_export",
            "version": 1,
            "generated_at": self.generated_at,
            "generated_by": self.generated_by,
            "scope": {"host": f.host, "user": f.user, "since": f.since, "until": f.until},
            "summary": {
                "events": len(self.events),
                "truncated": self.truncated,
                "first_event": self.events[0]["time"] if self.events else None,
                "last_event": self.events[-1]["time"] if self.events else None,
                "by_type": dict(self.counts_by_type()),
                "hosts": sorted({e["host"]["id"] for e in self.events}),
                "users": sorted({e["user"] for e in self.events if e.get("user")}),
            },
            "chain_verification": {"ok": self.chain_ok, "hosts": [c.as_json() for c in self.chains]},
            "alerts": [
                {
                    k: (format_time(v) if k.endswith(("_seen", "_at")) and isinstance(v, float) else v)
                    for k, v in a.items()
                    if k not in ("channels", "last_notified")
                }
                for a in self.alerts
            ],
            "events": self.events,
        }


def build(engine: Engine, f: EventFilter, *, actor: str, now: float) -> Incident:
    evs, truncated = queries.timeline(engine, f)
    spans: dict[str, tuple[int, int]] = {}
    for e in evs:
        hid, seq = e["host"]["id"], int(e["seq"])
        lo, hi = spans.get(hid, (seq, seq))
        spans[hid] = (min(lo, seq), max(hi, seq))
    for hid, (lo, hi) in skeleton_spans(
        engine, host=f.host, user=f.user, since=f.since, until=f.until
    ).items():
        have = spans.get(hid, (lo, hi))
        spans[hid] = (min(have[0], lo), max(have[1], hi))
    return Incident(
        filter=f,
        generated_at=format_time(now),
        generated_by=actor,
        events=evs,
        truncated=truncated,
        alerts=queries.alerts_in(engine, f),
        chains=reports.verify_hosts(engine, spans),
    )


def to_json(incident: Incident) -> str:
    return json.dumps(incident.as_json(), ensure_ascii=False, indent=2, sort_keys=False)


def to_csv(incident: Incident) -> str:
    """The timeline, one event per row, preceded by `#` comment lines with scope and chain result.

    A UTF-8 BOM first, so spreadsheet software in Japanese locales opens it as UTF-8.
    """
    buf = io.StringIO()
    buf.write("\ufeff")
    f = incident.filter
    hv = _header_value
    buf.write(
        f"# boothguard incident export; generated_at={incident.generated_at} by={hv(incident.generated_by)}\n"
    )
    buf.write(f"# scope host={hv(f.host)} user={hv(f.user)} since={hv(f.since)} until={hv(f.until)}\n")
    for c in incident.chains:
        problems = ";".join(f"{p.kind}:{p.from_seq}-{p.to_seq}" for p in c.problems) or "none"
        buf.write(
            f"# chain host={hv(c.host_id)} seq={c.seq_from}-{c.seq_to} checked={c.events_checked} "
            f"ok={str(c.ok).lower()} problems={problems} skeletons={_runs(c.skeletons)}\n"
        )
    if incident.truncated:
        buf.write(f"# truncated: only the first {len(incident.events)} events\n")
    w = csv.writer(buf, lineterminator="\n")
    cell = _cell
    w.writerow(CSV_FIELDS)
    for e in incident.events:
        w.writerow(
            [
                e["time"],
                cell(e["host"]["id"]),
                cell(e["host"]["name"]),
                e["seq"],
                e["type"],
                e["severity"],
                cell(e.get("user") or ""),
                cell(json.dumps(e.get("data") or {}, ensure_ascii=False, sort_keys=True)),
                e["id"],
                e["hash"],
                e["prev_hash"],
            ]
        )
    return buf.getvalue()


# Spreadsheets run a cell starting with one of these as a formula (the full-width ones too, in Japanese
# Excel); a leading white space does not stop them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:@/+-]*")


def _cell(text: str) -> str:
    """Such text gets a leading quote, so it shows as text."""
    return "'" + text if text.lstrip(" ")[:1] in _FORMULA_START or text[:1] in _FORMULA_START else text


def _runs(runs: list[tuple[int, int]]) -> str:
    """Seq runs retention compacted (link checked, content gone), as `lo-hi;lo-hi`, or `none`."""
    return ";".join(f"{lo}-{hi}" for lo, hi in runs) or "none"


def _header_value(value: str | None) -> str:
    """A `#` line's value: plain tokens as they are, anything else as a JSON string, so no value can end
    the line or add a `key=value` of its own (a host id `x ok=true` would forge a chain result)."""
    text = value or ""
    return text if _PLAIN_VALUE.fullmatch(text) else json.dumps(text, ensure_ascii=False)
