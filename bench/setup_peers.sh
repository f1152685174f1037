#!/usr/bin/env bash
# Installs what `python bench/run.py` compares wskit with, and nothing else:
#   - Python peers into the virtualenv (python-socketio, uvicorn, starlette) and matplotlib for the chart;
#   - Bun and WS-Kit 0.10 from the npm registry into bench/.scratch/ (git-ignored). The npm `bun`
#     package carries the Linux binary as an optional dependency, so nothing else is downloaded.
# Idempotent: a peer already installed at the pinned version is left alone.
# `--bun-only`: Bun alone (what `make test` needs for the native load generator's test).
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SCRATCH=bench/.scratch

# pinned: WS-Kit 0.10.x and the Bun and zod it was released against
BUN_VERSION=1.4.5
WSKIT_ZOD=0.10.2
WSKIT_BUN=0.10.1
WSKIT_MEMORY=0.10.1
ZOD_VERSION=4.1.13

if [ "${1:-}" = "--bun-only" ]; then
    if [ -x "$SCRATCH/node_modules/.bin/bun" ]; then
        exit 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup_peers: npm not found: Bun cannot be installed" >&2
        exit 0
    fi
    mkdir -p "$SCRATCH"
    [ -f "$SCRATCH/package.json" ] || echo '{"name":"wskit-bench-scratch","private":true}' > "$SCRATCH/package.json"
    echo "setup_peers: npm install bun@$BUN_VERSION (into $SCRATCH)"
    npm install --prefix "$SCRATCH" --no-audit --no-fund --loglevel=error "bun@$BUN_VERSION"
    exit 0
fi

missing=()
for spec in "socketio:python-socketio>=5.11" "uvicorn:uvicorn>=0.30" "starlette:starlette>=0.37" \
    "matplotlib:matplotlib>=3.8" "picows:picows>=1.6" "orjson:orjson>=3.10" "uvloop:uvloop>=0.19"; do
    module="${spec%%:*}"
    if ! "$PY" -c "import $module" 2>/dev/null; then
        missing+=("${spec#*:}")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup_peers: pip install ${missing[*]}"
    "$PY" -m pip install -q "${missing[@]}"
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "setup_peers: npm not found: the Bun peers (WS-Kit on Bun, raw Bun) will be skipped" >&2
    exit 0
fi
want="bun@$BUN_VERSION @ws-kit/zod@$WSKIT_ZOD @ws-kit/bun@$WSKIT_BUN @ws-kit/memory@$WSKIT_MEMORY zod@$ZOD_VERSION"
stamp="$SCRATCH/.installed"
if [ -x "$SCRATCH/node_modules/.bin/bun" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
mkdir -p "$SCRATCH"
[ -f "$SCRATCH/package.json" ] || echo '{"name":"wskit-bench-scratch","private":true}' > "$SCRATCH/package.json"
echo "setup_peers: npm install $want (into $SCRATCH)"
# shellcheck disable=SC2086
npm install --prefix "$SCRATCH" --no-audit --no-fund --loglevel=error $want
"$SCRATCH/node_modules/.bin/bun" --version >/dev/null
echo "$want" > "$stamp"
