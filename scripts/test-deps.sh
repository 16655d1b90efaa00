#!/usr/bin/env bash
# Installs what the test suite needs beyond Cargo (idempotent; quick when already done).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "need root to install $*: run as root or install them yourself" >&2
        exit 2
    fi
    if [ -z "${LOOKOUT_APT_UPDATED:-}" ]; then
        apt-get update -qq
        export LOOKOUT_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL server binaries (the tests start their own throwaway cluster) ---
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package)"
    apt_install postgresql
fi
