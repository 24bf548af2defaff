#!/usr/bin/env bash
# Install the real Aider (aider-chat from PyPI) into its own venv for the e2e tests.
#
#   scripts/install-aider.sh             # prints the absolute path of the `aider` binary
#
# Idempotent and fast when already installed (no network then). Aider pins a large tree
# (litellm, tree-sitter, numpy, ...) whose exact pins would clash with the project venv's, so
# it always gets a venv of its own: never install it into .venv.
#
# Environment:
#   HIVE_AIDER_VERSION  version to install (default below; tests/aider_support/NOTES.md)
#   HIVE_AIDER_PREFIX   venv directory (default: <repo>/.cache/aider/<version>)
#   HIVE_AIDER_PYTHON   interpreter for the venv (default: python3.11, else python3)
#
# Exit codes: 0 ok (path on stdout, the only stdout line); 2 no usable python;
# 3 install failed (registry unreachable?); 4 installed but the binary does not run.
set -euo pipefail

VERSION="${HIVE_AIDER_VERSION:-0.86.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${HIVE_AIDER_PREFIX:-$ROOT/.cache/aider/$VERSION}"
mkdir -p "$(dirname "$PREFIX")"
# The venv's scripts name their interpreter by absolute path: resolve links (a worktree's
# .cache is a link to the main checkout's) so they keep working from every checkout.
PREFIX="$(cd "$(dirname "$PREFIX")" && pwd -P)/$(basename "$PREFIX")"
BIN="$PREFIX/bin/aider"

works() {
    [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^aider $VERSION\$"
}

if works; then
    echo "$BIN"
    exit 0
fi

PY="${HIVE_AIDER_PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 python3.10 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv' 2>/dev/null; then
            PY="$cand"; break
        fi
    done
fi
if [ -z "$PY" ] || ! "$PY" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
    echo "install-aider: no python 3.10-3.12 with venv found (aider-chat 0.86 needs one of those)" >&2
    exit 2
fi

LOG="$(dirname "$PREFIX")/pip-install-$VERSION.log"
echo "install-aider: installing aider-chat==$VERSION into $PREFIX (0.5-2.5 min)" >&2
rm -rf "$PREFIX.tmp"
# Build in a side directory and rename at the end, so an interrupted install never looks done.
# PIP_CONSTRAINT is cleared: a machine-wide constraints file is written for the project's
# pins, and aider's own exact pins must win inside its private venv.
if ! { "$PY" -m venv "$PREFIX.tmp" &&
       PIP_CONSTRAINT="" "$PREFIX.tmp/bin/python" -m pip install -q --disable-pip-version-check \
            "aider-chat==$VERSION"; } >"$LOG" 2>&1; then
    echo "install-aider: pip install failed (is PyPI reachable?); log: $LOG" >&2
    tail -n 20 "$LOG" >&2 || true
    rm -rf "$PREFIX.tmp"
    exit 3
fi
rm -rf "$PREFIX"
mv "$PREFIX.tmp" "$PREFIX"
# A venv records its own path in its scripts; rewrite the shebangs for the final location.
grep -rlI --null "$PREFIX.tmp" "$PREFIX/bin" 2>/dev/null | xargs -0 -r sed -i "s#$PREFIX.tmp#$PREFIX#g"

if ! works; then
    echo "install-aider: installed, but $BIN does not run or is not version $VERSION" >&2
    "$BIN" --version >&2 || true
    exit 4
fi
echo "$BIN"
