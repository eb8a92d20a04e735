"""The .deb's maintainer scripts: accounts, directories, service enablement, purge.

Written after what debhelper generates (dh_installsystemd), with every systemctl call guarded so the
scripts succeed in a chroot, an image build or a container, where systemd is not running.
"""

from __future__ import annotations

from boothguard.install.layout import (
    AGENT_UNIT,
    COLLECTOR_STATE_DIR,
    COLLECTOR_UNIT,
    COLLECTOR_USER,
    RUNTIME_DIR,
    SESSION_UNIT,
    STATE_DIR,
    SYSUSERS_CONF,
    TMPFILES_CONF,
    UDEV_RULE,
)

POSTINST = f"""#!/bin/sh
set -e

accounts() {{
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers {SYSUSERS_CONF}
    else
        getent group boothguard >/dev/null || groupadd --system boothguard
        getent group boothguard-cti >/dev/null || groupadd --system boothguard-cti
        getent passwd {COLLECTOR_USER} >/dev/null || useradd --system --user-group --no-create-home \\
            --home-dir {COLLECTOR_STATE_DIR} --shell /usr/sbin/nologin --comment "boothguard collector" \\
            {COLLECTOR_USER}
    fi
}}

directories() {{
    if command -v systemd-tmpfiles >/dev/null 2>&1 && [ -d /proc/self ]; then
        systemd-tmpfiles --create {TMPFILES_CONF} || true
    fi
    # Also without tmpfiles (and to repair modes): the state stays root-only.
    install -d -m 0700 -o root -g root {STATE_DIR}
    install -d -m 0700 -o {COLLECTOR_USER} -g {COLLECTOR_USER} {COLLECTOR_STATE_DIR}
    install -d -m 0755 -o root -g root {RUNTIME_DIR}
    chgrp {COLLECTOR_USER} /etc/boothguard/collector.d
    chmod 0750 /etc/boothguard/collector.d
    if [ -f /etc/boothguard/collector.toml ] && [ -z "$2" ]; then
        chgrp {COLLECTOR_USER} /etc/boothguard/collector.toml
        chmod 0640 /etc/boothguard/collector.toml
    fi
}}

if [ "$1" = "configure" ]; then
    accounts
    directories "$@"
    if [ -S /run/udev/control ]; then
        udevadm control --reload-rules || true
    fi
fi

if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] \\
        || [ "$1" = "abort-remove" ]; then
    deb-systemd-helper unmask {AGENT_UNIT} >/dev/null || true
    if deb-systemd-helper --quiet was-enabled {AGENT_UNIT}; then
        deb-systemd-helper enable {AGENT_UNIT} >/dev/null || true
    else
        deb-systemd-helper update-state {AGENT_UNIT} >/dev/null || true
    fi
    deb-systemd-helper --user unmask {SESSION_UNIT} >/dev/null || true
    if deb-systemd-helper --user --quiet was-enabled {SESSION_UNIT}; then
        deb-systemd-helper --user enable {SESSION_UNIT} >/dev/null || true
    else
        deb-systemd-helper --user update-state {SESSION_UNIT} >/dev/null || true
    fi
    # The collector runs on the central host only: shipped, not enabled.
    deb-systemd-helper update-state {COLLECTOR_UNIT} >/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            deb-systemd-invoke try-restart {AGENT_UNIT} {COLLECTOR_UNIT} >/dev/null || true
        fi
        deb-systemd-invoke start {AGENT_UNIT} >/dev/null || true
    fi
fi

exit 0
"""

PRERM = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = "remove" ]; then
    deb-systemd-invoke stop {AGENT_UNIT} {COLLECTOR_UNIT} >/dev/null || true
fi
exit 0
"""

POSTRM = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "remove" ]; then
    deb-systemd-helper mask {AGENT_UNIT} {COLLECTOR_UNIT} >/dev/null || true
    deb-systemd-helper --user mask {SESSION_UNIT} >/dev/null || true
    # Bytecode Python wrote at run time, which dpkg does not track.
    rm -rf /opt/boothguard
    if [ -S /run/udev/control ]; then
        udevadm control --reload-rules || true
    fi
fi
if [ "$1" = "purge" ]; then
    deb-systemd-helper purge {AGENT_UNIT} {COLLECTOR_UNIT} >/dev/null || true
    deb-systemd-helper unmask {AGENT_UNIT} {COLLECTOR_UNIT} >/dev/null || true
    deb-systemd-helper --user purge {SESSION_UNIT} >/dev/null || true
    deb-systemd-helper --user unmask {SESSION_UNIT} >/dev/null || true
    # Purge means gone: spool, host secret and token, the collector's database, the configuration.
    rm -rf {STATE_DIR} {COLLECTOR_STATE_DIR} {RUNTIME_DIR} /etc/boothguard
fi
exit 0
"""

UDEV_NOTE = UDEV_RULE  # re-exported for the builder's file list
