#!/usr/bin/env bash
# Installs the system programs the tests drive for real (Debian packages), when missing:
# redis-server (scale-out and fault tests start their own), chromium (the demo page test) and
# nginx (tests/deploy runs deploy/nginx.conf in front of two instances, as a user, on loopback).
#
# Best effort: this never fails `make test`. Without root (and without passwordless sudo), or
# without network access to the apt mirrors, it says what is missing and exits 0; the tests
# that need a missing program then follow their own rule (skipped locally, failed under CI=true).
set -uo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# /usr/sbin is not on every user's PATH: look there too (the tests do)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && ! command -v google-chrome >/dev/null 2>&1; then
  missing+=(chromium)
fi
((${#missing[@]})) || exit 0

give_up() {
  echo "system-deps: WARNING: could not install ${missing[*]} ($1)." >&2
  echo "system-deps: install them yourself to run every test; tests needing them skip (or fail under CI=true)." >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || give_up "no apt-get here"
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || give_up "not root and no sudo"
  sudo -n true 2>/dev/null || give_up "not root and sudo needs a password"
  sudo="sudo -n"
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null 2>&1 || give_up "apt-get update failed (no network to the mirrors?)"
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || give_up "apt-get install failed"
exit 0
