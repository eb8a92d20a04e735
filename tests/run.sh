#!/usr/bin/env bash
# The one command that passes the tests on a fresh Debian 12 machine:
#   sudo bash tests/run.sh
# As root it installs the Debian packages the suite starts for real (tests/apt-packages.txt); then it
# builds .venv, and runs ruff, mypy --strict and pytest. Any failure fails the run (pytest's exit 5,
# "no tests ran", too).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  mapfile -t pkgs < <(grep -v '^\s*#' tests/apt-packages.txt | sed '/^\s*$/d')
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check boothguard tests
.venv/bin/ruff format --check boothguard tests
.venv/bin/mypy
.venv/bin/pytest "$@"
