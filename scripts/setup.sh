#!/usr/bin/env bash
# Set up everything Hive Lab needs on a fresh Debian/Ubuntu machine, idempotently.
#   scripts/setup.sh          runtime: tmux, git, a venv with hive-lab installed (editable)
#   scripts/setup.sh --test   also test tools: chromium (UI tests), PostgreSQL + psycopg (the
#                             shared-store tests), the Claude Code CLI and Aider (e2e)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}

apt_install() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install ${missing[*]} (no apt-get here)" >&2; return 1
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

apt_install tmux:tmux git:git
[ $want_test -eq 1 ] && apt_install chromium:chromium
# The shared-store tests run a real PostgreSQL server (Debian's package; they skip without it).
pg_present() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if [ $want_test -eq 1 ] && ! pg_present; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing postgresql"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  else
    echo "setup: please install postgresql (the shared-store tests will skip)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.hive-lab-installed
extras=""
[ $want_test -eq 1 ] && extras="[test,bench,postgres]"
sig="$(sha1sum pyproject.toml | cut -c1-40)$extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extras"
  echo "$sig" > "$stamp"
fi

if [ $want_test -eq 1 ] && [ -x scripts/install-claude.sh ]; then
  # The real Claude Code CLI for the end-to-end tests; they skip with a reason if this fails.
  scripts/install-claude.sh >/dev/null || echo "setup: Claude Code CLI not installed (e2e tests will skip)" >&2
fi
if [ $want_test -eq 1 ] && [ -x scripts/install-aider.sh ]; then
  # Real Aider for its e2e tests, in a venv of its own under .cache/aider (2.5 min cold,
  # 40 s with a warm pip cache): installed once here rather than inside a test run.
  scripts/install-aider.sh >/dev/null || echo "setup: Aider not installed (its e2e tests will skip)" >&2
fi
echo "setup: ready (.venv)"
