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
# Two pytest runs: the umockdev tests need the pytest process itself under umockdev-wrapper (its preload
# library); everything else runs plain. Without arguments each run must select tests (exit 5 fails);
# with arguments (a path, -k …) one of them may select nothing, but not both. A `-m EXPR` given here is
# combined with each run's own marker (pytest keeps only the last -m, which ran a selection twice).
args=$#
mark=""
rest=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -m) mark="$2"; shift 2 ;;
    -m*) mark="${1#-m}"; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
plain_mark="not umockdev"
mocked_mark="umockdev"
if [ -n "$mark" ]; then
  plain_mark="($mark) and not umockdev"
  mocked_mark="($mark) and umockdev"
fi
set +e
.venv/bin/pytest -m "$plain_mark" "${rest[@]}"
plain=$?
umockdev-wrapper .venv/bin/pytest -m "$mocked_mark" "${rest[@]}"
mocked=$?
set -e
if [ "$args" -gt 0 ] && [ "$plain" = 5 ] && [ "$mocked" = 0 ]; then plain=0; fi
if [ "$args" -gt 0 ] && [ "$mocked" = 5 ] && [ "$plain" = 0 ]; then mocked=0; fi
echo "pytest: plain exit $plain, umockdev exit $mocked"
[ "$plain" = 0 ] && [ "$mocked" = 0 ]
