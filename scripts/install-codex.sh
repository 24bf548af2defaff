#!/usr/bin/env bash
# Install the real Codex CLI into a project-local prefix for the e2e tests.
#
#   scripts/install-codex.sh            # prints the absolute path of the `codex` launcher
#
# Idempotent and fast when already installed (no network then). @openai/codex is a small
# node launcher (bin/codex.js) plus a native Rust binary in a platform package
# (@openai/codex-linux-x64 = npm:@openai/codex@<version>-linux-x64), pulled as an optional
# dependency; the launcher finds it under node_modules. Needs node >= 16 on PATH.
#
# Environment:
#   HIVE_CODEX_VERSION  version to install (default below; tests/codex_support/NOTES.md)
#   HIVE_CODEX_PREFIX   install prefix (default: <repo>/.cache/codex/<version>)
#
# Exit codes: 0 ok (path on stdout, the only stdout line); 2 npm/node missing;
# 3 install failed (registry unreachable?); 4 installed but the binary does not run
# (e.g. no native package for this platform).
set -euo pipefail

VERSION="${HIVE_CODEX_VERSION:-0.169.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${HIVE_CODEX_PREFIX:-$ROOT/.cache/codex/$VERSION}"
BIN="$PREFIX/node_modules/.bin/codex"

works() {
    [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^codex-cli $VERSION\$"
}

if works; then
    echo "$BIN"
    exit 0
fi

for tool in npm node; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-codex: $tool not found on PATH; cannot install @openai/codex@$VERSION" >&2
        exit 2
    fi
done

mkdir -p "$PREFIX"
# A private package.json keeps npm from walking up into the repository.
[ -f "$PREFIX/package.json" ] || echo '{"name": "hive-lab-codex-cli", "private": true}' >"$PREFIX/package.json"
LOG="$PREFIX/npm-install.log"
echo "install-codex: installing @openai/codex@$VERSION into $PREFIX" >&2
if ! npm install --prefix "$PREFIX" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error --ignore-scripts "@openai/codex@$VERSION" >"$LOG" 2>&1; then
    echo "install-codex: npm install failed (is the npm registry reachable? $(npm config get registry 2>/dev/null))" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 3
fi

if ! works; then
    echo "install-codex: installed, but $BIN does not run or is not version $VERSION" \
         "(native package for $(uname -s)/$(uname -m) missing?)" >&2
    "$BIN" --version >&2 || true
    exit 4
fi
echo "$BIN"
