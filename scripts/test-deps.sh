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

# --- openssl: scripts/with-postgres.sh makes the test cluster's TLS certificate ---
command -v openssl >/dev/null || apt_install openssl

# --- Message brokers (Debian packages): tests/brokers.rs starts its own on loopback ---
brokers=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || brokers+=(rabbitmq-server)
[ -x /usr/sbin/mosquitto ] || brokers+=(mosquitto)
[ -x /usr/sbin/nats-server ] || brokers+=(nats-server)
[ -x /usr/bin/redis-server ] || brokers+=(redis-server)
if [ "${#brokers[@]}" -gt 0 ]; then
    echo "installing message brokers (Debian packages): ${brokers[*]}"
    apt_install "${brokers[@]}"
fi
echo "test dependencies: brokers installed (RabbitMQ, Mosquitto, NATS, Redis)"

# --- nginx (the Debian package): tests/request_path.rs puts a real reverse proxy in front
# --- of `serve`, with a config of its own in a temp dir (no daemon, loopback only).
if ! [ -x /usr/sbin/nginx ]; then
    echo "installing nginx (Debian package)"
    # Installing must not start the packaged nginx on port 80: invoke-rc.d asks
    # policy-rc.d, and 101 means "do not start". Only when no policy is in place already.
    policy=/usr/sbin/policy-rc.d
    if [ "$(id -u)" = 0 ] && ! [ -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
        apt_install nginx
        rm -f "$policy"
        trap - EXIT
    else
        apt_install nginx
    fi
fi
echo "test dependencies: $(/usr/sbin/nginx -v 2>&1)"

# --- podman, runc and mmdebstrap (Debian packages): tests/image.rs builds and runs the
# --- container image on a base made from Debian's mirror (no registry needed) ---
image_tools=()
command -v podman >/dev/null || image_tools+=(podman)
command -v runc >/dev/null || image_tools+=(runc)
command -v mmdebstrap >/dev/null || image_tools+=(mmdebstrap)
if [ "${#image_tools[@]}" -gt 0 ]; then
    echo "installing ${image_tools[*]} (Debian packages)"
    apt_install "${image_tools[@]}"
fi

# --- systemd-analyze: tests/deploy.rs verifies the units in deploy/systemd ---
command -v systemd-analyze >/dev/null || apt_install systemd

# --- A real browser: tests/console.rs drives the web console with headless Chromium ---
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    echo "installing Chromium and its WebDriver (Debian packages)"
    apt_install chromium chromium-driver
fi
echo "test dependencies: $(/usr/bin/chromium --version 2>/dev/null | head -1), chromedriver"

# --- Python tools in a virtualenv ---
venv="${LOOKOUT_VENV:-.venv}"

if [ ! -x "$venv/bin/python" ]; then
    echo "test dependencies: creating $venv"
    python3 -m venv "$venv"
fi

# Errbot 6.x for tests/errbot.rs, which runs a real bot with its Webserver plugin.
# pytest is needed because Errbot's Null backend imports its test backend.
if "$venv/bin/python" -c 'import pytest; from errbot.version import VERSION; assert VERSION.startswith("6.")' \
    2>/dev/null; then
    echo "test dependencies: errbot and pytest already in $venv"
else
    echo "test dependencies: installing errbot 6.x and pytest into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'errbot>=6,<7' pytest
fi

# --- Standard Webhooks (issue 6): the official Python library verifies the webhook
# --- service's signatures independently (tests/signatures.rs).
if ! "$venv/bin/python" -c "import standardwebhooks" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "standardwebhooks==1.1.0"
fi
echo "test dependencies: standardwebhooks $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("standardwebhooks"))') in $venv"
# --- end Standard Webhooks

# --- moto's server mode (issue 18): a local emulator of AWS SQS and SNS for tests/aws.rs,
# --- and of Kinesis, EventBridge and S3 (issue 28).
# --- It does not verify SigV4 signatures; lookout's signing is checked against AWS's
# --- published test vectors in lookout/src/delivery/signing.rs instead.
if ! "$venv/bin/python" -c "import moto, flask, flask_cors" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==5.2.5"
fi
echo "test dependencies: moto $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))') in $venv"
# --- end moto

# --- OpenTelemetry (issue 26): the official protobuf definitions decode what `serve`
# --- exports over OTLP/HTTP in tests/telemetry.rs (tests/otlp_receiver.py).
if ! "$venv/bin/python" -c "from opentelemetry.proto.collector.trace.v1 import trace_service_pb2" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "opentelemetry-proto==1.45.2"
fi
echo "test dependencies: opentelemetry-proto $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))') in $venv"
# --- end OpenTelemetry

# --- schemathesis (issue 26): a real API fuzzer, run by tests/contract.rs against a live
# --- `serve` and its OpenAPI document.
if ! "$venv/bin/python" -c "import schemathesis" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
echo "test dependencies: schemathesis $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))') in $venv"
# --- end schemathesis

# --- The official AsyncAPI parser (issue 26): tests/contract.rs checks `lookout schema
# --- --asyncapi` with it (tests/asyncapi/check.mjs, its package.json pins the version).
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
if ! [ -d tests/asyncapi/node_modules/@asyncapi/parser ]; then
    npm install --silent --no-audit --no-fund --prefix tests/asyncapi >/dev/null
fi
echo "test dependencies: @asyncapi/parser $(node -p 'require("./tests/asyncapi/node_modules/@asyncapi/parser/package.json").version')"
# --- end AsyncAPI parser

# --- aiosmtpd (issue 25): a real SMTP server the project did not write; tests/smtp_real.rs
# --- starts it on loopback and parses what it receives with Python's `email` package.
if ! "$venv/bin/python" -c "import aiosmtpd" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==1.4.6"
fi
echo "test dependencies: aiosmtpd $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiosmtpd"))') in $venv"
# --- end aiosmtpd
