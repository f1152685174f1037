#!/usr/bin/env bash
# Installs the npm packages the test suite runs (not the application) into .npm-deps/
# (git-ignored): @asyncapi/parser, which validates the AsyncAPI document wskit exports
# (tests/export); typescript, which compiles the declarations `wskit types` writes; zod and
# WS-Kit's @ws-kit/zod (with the @ws-kit packages it depends on), which the zod schemas of
# `wskit types --zod` import (tests/export/test_typescript*.py). Pinned, so every run checks
# against the same tools: WS-Kit 0.10 and zod as bench/setup_peers.sh pins them.
# Idempotent: a folder already holding exactly these versions is left alone.
# Without npm it says so and exits 0: the tests that need it then skip, or fail under CI=true.
set -euo pipefail

cd "$(dirname "$0")/.."
DEPS=.npm-deps
PACKAGES=(
    "@asyncapi/parser@3.6.6"
    "typescript@5.9.3"
    "zod@4.1.13"
    "@ws-kit/zod@0.10.2"
    "@ws-kit/core@0.10.1"
    "@ws-kit/plugins@0.10.1"
    "@ws-kit/pubsub@0.10.2"
)

want="${PACKAGES[*]}"
stamp="$DEPS/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm-deps: npm not found: ${PACKAGES[*]} not installed (tests that need them skip; CI=true fails them)" >&2
    exit 0
fi
mkdir -p "$DEPS"
[ -f "$DEPS/package.json" ] || echo '{"name":"wskit-test-npm-deps","private":true}' > "$DEPS/package.json"
echo "npm-deps: npm install ${PACKAGES[*]} (into $DEPS)"
npm install --prefix "$DEPS" --no-audit --no-fund --loglevel=error --save-exact "${PACKAGES[@]}"
echo "$want" > "$stamp"
