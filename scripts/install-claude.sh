#!/usr/bin/env bash
# Install the real Claude Code CLI into a project-local prefix for the e2e tests.
#
#   scripts/install-claude.sh            # prints the absolute path of the `claude` binary
#
# Idempotent and fast when already installed (no network then). Installs
# @anthropic-ai/claude-code and its platform package (which holds the native binary:
# npm >= 11 does not run the wrapper's postinstall, so the wrapper's bin is a stub).
#
# Environment:
#   HIVE_CLAUDE_VERSION  version to install (default below; FACTS.md / samples are 2.1.197)
#   HIVE_CLAUDE_PREFIX   install prefix (default: <repo>/.cache/claude/<version>)
#
# Exit codes: 0 ok (path on stdout, the only stdout line); 2 npm missing;
# 3 install failed (registry unreachable?); 4 installed but the binary does not run.
set -euo pipefail

VERSION="${HIVE_CLAUDE_VERSION:-2.1.197}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${HIVE_CLAUDE_PREFIX:-$ROOT/.cache/claude/$VERSION}"

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64)  PLATFORM=linux-x64 ;;
    Linux-aarch64) PLATFORM=linux-arm64 ;;
    Darwin-arm64)  PLATFORM=darwin-arm64 ;;
    Darwin-x86_64) PLATFORM=darwin-x64 ;;
    *) echo "install-claude: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 3 ;;
esac
if [ "$PLATFORM" = linux-x64 ] || [ "$PLATFORM" = linux-arm64 ]; then
    # musl systems (Alpine) need the -musl build
    if ! ldd --version 2>&1 | grep -qi 'glibc\|gnu libc'; then
        if ldd --version 2>&1 | grep -qi musl; then PLATFORM="$PLATFORM-musl"; fi
    fi
fi
BIN="$PREFIX/node_modules/@anthropic-ai/claude-code-$PLATFORM/claude"

works() {
    [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^$VERSION "
}

if works; then
    echo "$BIN"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-claude: npm not found on PATH; cannot install @anthropic-ai/claude-code@$VERSION" >&2
    exit 2
fi

mkdir -p "$PREFIX"
# A private package.json keeps npm from walking up into the repository.
[ -f "$PREFIX/package.json" ] || echo '{"name": "hive-lab-claude-cli", "private": true}' >"$PREFIX/package.json"
LOG="$PREFIX/npm-install.log"
echo "install-claude: installing @anthropic-ai/claude-code@$VERSION ($PLATFORM) into $PREFIX" >&2
if ! npm install --prefix "$PREFIX" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error --ignore-scripts \
        "@anthropic-ai/claude-code@$VERSION" "@anthropic-ai/claude-code-$PLATFORM@$VERSION" \
        >"$LOG" 2>&1; then
    echo "install-claude: npm install failed (is the npm registry reachable? $(npm config get registry 2>/dev/null))" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 3
fi

if ! works; then
    echo "install-claude: installed, but $BIN does not run or is not version $VERSION" >&2
    "$BIN" --version >&2 || true
    exit 4
fi
echo "$BIN"
