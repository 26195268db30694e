#!/usr/bin/env bash
# Install the Debian packages the test suite needs when they are missing: PostgreSQL and Redis
# servers, and Chromium for the browser tests (tests/browser, Playwright drives /usr/bin/chromium).
# Needs root or sudo on a fresh machine; a machine that has them does nothing here.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
