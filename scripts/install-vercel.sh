#!/usr/bin/env bash
# Install what tests/e2e/test_vercel_runtime.py needs, idempotently:
#   - the Vercel CLI, pinned, into <repo>/.tools/vercel (git-ignored, generated);
#   - uv into the project venv (`vercel dev` builds the Python functions' env with it).
#
#   VENV=/path/to/venv bash scripts/install-vercel.sh     # default VENV: <repo>/.venv
#
# Needs node/npm and the PyPI and npm registries; nothing else.
set -euo pipefail

VERCEL_VERSION=58.10.0
UV_VERSION=0.13.9   # @vercel/python 6.56.2 (in that CLI) needs uv >= 0.9.25
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.tools/vercel"
VENV="${VENV:-$ROOT/.venv}"

installed_version() {
    # The version npm installed, read from the package itself (no node start-up, no network).
    local pkg="$PREFIX/node_modules/vercel/package.json"
    [ -f "$pkg" ] || return 0
    sed -n 's/^  "version": "\(.*\)",$/\1/p' "$pkg" | head -n 1
}

if [ "$(installed_version)" = "$VERCEL_VERSION" ] && [ -x "$PREFIX/node_modules/.bin/vercel" ]; then
    echo "vercel $VERCEL_VERSION already in $PREFIX"
else
    echo "installing vercel $VERCEL_VERSION into $PREFIX"
    mkdir -p "$PREFIX"
    # A package.json of its own keeps npm from walking up into the repo's (or ui/'s).
    [ -f "$PREFIX/package.json" ] || echo '{"private": true}' > "$PREFIX/package.json"
    npm install --prefix "$PREFIX" --save-exact --no-audit --no-fund --loglevel=error "vercel@$VERCEL_VERSION"
    [ "$(installed_version)" = "$VERCEL_VERSION" ] || { echo "vercel $VERCEL_VERSION did not install" >&2; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "no Python venv at $VENV (set VENV, or create .venv with python3.12 first)" >&2
    exit 1
fi
if [ -x "$VENV/bin/uv" ]; then
    echo "uv already in $VENV: $("$VENV/bin/uv" --version)"
else
    echo "installing uv $UV_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    "$VENV/bin/uv" --version
fi
