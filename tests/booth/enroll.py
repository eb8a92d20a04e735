"""Enrolls a booth (the .deb already apt-installed, booted with net=True) to the host's BoothCollector.

The booth gets a static address on QEMU's user-mode network, a [ship] drop-in naming the collector, and its
host token from `boothguard enroll` with the secret on the 9p share; then the agent restarts to ship, and
this returns once its first events are stored. Shared by the scenarios (test_booth) and the power cuts.
"""

from __future__ import annotations

import time

from tests.booth.collector import BoothCollector
from tests.booth.vm import Booth, ok, sh, wait_active

# Static address on the slirp network; networkd brings it up at every boot, before or beside the agent.
NETWORK = "[Match]\\nType=ether\\n[Network]\\nAddress=10.0.2.15/24\\nGateway=10.0.2.2\\n"

# What the booth says when its events do not reach the collector.
DIAGNOSE = (
    "ip -br addr; cat /etc/boothguard/agent.d/50-collector.toml; ls -la /var/lib/boothguard;"
    " boothguard status --json; journalctl -b -u boothguard --no-pager | tail -40;"
    " systemd-analyze blame | head"
)


def enroll(vm: Booth, coll: BoothCollector, timeout: float = 180) -> float:
    """Network, [ship] drop-in, enrollment, restart; until agent.started is stored. Returns the seconds."""
    t0 = time.monotonic()
    port = coll.proc.port
    ok(
        vm,
        f"mkdir -p /etc/systemd/network && printf '{NETWORK}' > /etc/systemd/network/10-booth.network"
        " && systemctl enable --now systemd-networkd",
    )
    probe = f"import socket; socket.create_connection(('10.0.2.2', {port}), 2).close()"
    ok(
        vm,
        f'for i in $(seq 120); do python3 -c "{probe}" 2>/dev/null && exit 0; sleep 0.5; done; exit 1',
        120,
    )
    # A short backoff ceiling: after each boot the shipper finds the collector within seconds, not 5 min.
    ok(
        vm,
        f"printf '[ship]\\ncollector_url = \"{coll.guest_url}\"\\nbackoff_max = 5.0\\n'"
        " > /etc/boothguard/agent.d/50-collector.toml"
        f" && boothguard enroll --collector {coll.guest_url} --secret-file /mnt/work/enroll.secret"
        # sync: the setup's own files (drop-in, networkd) must not be what a power cut takes away; the
        # agent's spool and token are fsynced by the agent itself.
        " && sync && systemctl restart boothguard",
        120,
    )
    wait_active(vm, 120)
    deadline = time.monotonic() + timeout
    while coll.count("agent.started") < 1:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no agent.started at the collector after {timeout}s\n"
                f"{vm_diagnosis(vm)}\n{coll.proc.output()}"
            )
        time.sleep(0.2)
    return time.monotonic() - t0


def vm_diagnosis(vm: Booth) -> str:
    return str(sh(vm, DIAGNOSE)["out"])
