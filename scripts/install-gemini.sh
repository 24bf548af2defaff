#!/usr/bin/env bash
# Install the real Gemini CLI into a project-local prefix for the e2e tests.
#
#   scripts/install-gemini.sh            # prints the absolute path of the `gemini` binary
#
# Idempotent and fast when already installed (no network then). @google/gemini-cli is a
# bundled Node.js program (no native platform package); it needs node >= 20 on PATH.
#
# Environment:
#   HIVE_GEMINI_VERSION  version to install (default below; tests/gemini_support/NOTES.md)
#   HIVE_GEMINI_PREFIX   install prefix (default: <repo>/.cache/gemini/<version>)
#
# Exit codes: 0 ok (path on stdout, the only stdout line); 2 npm/node missing;
# 3 install failed (registry unreachable?); 4 installed but the binary does not run.
set -euo pipefail

VERSION="${HIVE_GEMINI_VERSION:-0.61.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${HIVE_GEMINI_PREFIX:-$ROOT/.cache/gemini/$VERSION}"
BIN="$PREFIX/node_modules/.bin/gemini"

works() {
    [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^$VERSION\$"
}

if works; then
    echo "$BIN"
    exit 0
fi

for tool in npm node; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-gemini: $tool not found on PATH; cannot install @google/gemini-cli@$VERSION" >&2
        exit 2
    fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "install-gemini: node $(node --version) is too old; @google/gemini-cli needs node >= 20" >&2
    exit 2
fi

mkdir -p "$PREFIX"
# A private package.json keeps npm from walking up into the repository.
[ -f "$PREFIX/package.json" ] || echo '{"name": "hive-lab-gemini-cli", "private": true}' >"$PREFIX/package.json"
LOG="$PREFIX/npm-install.log"
echo "install-gemini: installing @google/gemini-cli@$VERSION into $PREFIX" >&2
if ! npm install --prefix "$PREFIX" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error --ignore-scripts "@google/gemini-cli@$VERSION" >"$LOG" 2>&1; then
    echo "install-gemini: npm install failed (is the npm registry reachable? $(npm config get registry 2>/dev/null))" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 3
fi

if ! works; then
    echo "install-gemini: installed, but $BIN does not run or is not version $VERSION" >&2
    "$BIN" --version >&2 || true
    exit 4
fi
echo "$BIN"
