"""Fleet simulator: N enrolled booths posting chained, gzipped NDJSON to real collector processes.

    .venv/bin/python -m tests.bench.bench_fleet --booths 10000 --collectors 2 --db pg --seconds 300

Each booth enrolls with its own token through the collector's API, then ships what the agent ships: a
heartbeat every `--beat` seconds (60: real time) and about one security event per beat, sealed and chained
by the project's own `seal_many`, one gzipped batch per request on a fresh loopback connection, retried on
429/503 as the shipper does (Retry-After spread by up to half again, as a floor under its growing
backoff). 1 % of booths stop for good (each must be alerted `collector.host.silent`; no other may be) and
1 % lose the network for 1.5 beats and come back with a backlog. The collectors run with
silence_heartbeats = 3, so the threshold is 3 beats.
Afterwards: every acknowledged event must be stored exactly once, by (host, seq) and byte for byte, with no
chain alert. Then a capacity burst (one-event requests as fast as the collectors answer) and the floor: the
same client against a trivial endpoint on the same uvicorn, measured in the same run. Prints JSON; exit 1
when a correctness check fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.fleet.run import BadOptions, Options, run, temp_dir


def failures(result: dict[str, object]) -> list[str]:
    """The correctness checks; performance targets are reported, not asserted."""
    out = []
    once = result["exactly_once"]
    silence = result["silence"]
    chain = result["chain"]
    assert isinstance(once, dict)
    assert isinstance(silence, dict)
    assert isinstance(chain, dict)
    for key in ("missing", "duplicates", "altered"):
        if once[key]:
            out.append(f"{once[key]} events {key}")
    if silence["alerted_true"] != silence["stopped"]:
        out.append(f"{silence['stopped'] - silence['alerted_true']} stopped booths not alerted silent")
    if silence["false_silences"]:
        out.append(f"{silence['false_silences']} false silences")
    if chain["chain_alerts"]:
        out.append(f"{chain['chain_alerts']} chain alerts")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--booths", type=int, default=1000)
    ap.add_argument("--collectors", type=int, default=1)
    ap.add_argument("--db", choices=["pg", "sqlite"], default="pg")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--beat", type=float, default=60.0, help="heartbeat interval; < 60 compresses time")
    ap.add_argument("--backlog", type=int, default=200)
    ap.add_argument("--capacity-seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--max-concurrent-ingests", type=int, default=None, help="collector setting (default: its)"
    )
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per booth in flight
    opts = Options(
        booths=args.booths,
        collectors=args.collectors,
        db=args.db,
        seconds=args.seconds,
        beat=args.beat,
        backlog=args.backlog,
        capacity_seconds=args.capacity_seconds,
        seed=args.seed,
        max_concurrent_ingests=args.max_concurrent_ingests,
    )
    try:
        with temp_dir() as tmp:
            result = run(opts, Path(tmp))
    except BadOptions as exc:
        print(f"bench_fleet: {exc}", file=sys.stderr)
        return 2
    result["failures"] = failures(result)
    print(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
