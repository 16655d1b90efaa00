#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: a fresh data directory in a temp
# folder, listening on 127.0.0.1 on a free port, stopped and removed afterwards.
# The command sees LOOKOUT_TEST_DATABASE_URL (and LOOKOUT_TEST_DATABASE_CA, the CA of the
# cluster's TLS certificate, both made at start). Nothing already running is used.
#   scripts/with-postgres.sh cargo test
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "PostgreSQL server binaries not found: run \`make test-deps\` (installs Debian's postgresql)" >&2
    exit 2
fi

# PostgreSQL refuses to run as root: run it as an unprivileged user.
run_as=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    run_as=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/lookout-pg.XXXXXX)
chmod 755 "$dir"
[ ${#run_as[@]} -eq 0 ] || chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
    "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

"${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U lookout --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
# TLS too (tests of `sslmode=verify-full`): a throwaway CA, made now, and a certificate
# it signs for 127.0.0.1 and localhost (rustls wants a CA above the server's certificate,
# not the certificate itself as the root); plain connections are still accepted.
{
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lookout test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext" &&
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt"
} >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; exit 1; }
chmod 600 "$dir/server.key"
[ ${#run_as[@]} -eq 0 ] || chown postgres "$dir/server.key" "$dir/server.crt"
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U lookout lookout_test

export LOOKOUT_TEST_DATABASE_URL="postgres://lookout@127.0.0.1:$port/lookout_test"
# The CA that signed the cluster's certificate: the root for `sslmode=verify-full`.
export LOOKOUT_TEST_DATABASE_CA="$dir/ca.crt"
echo "PostgreSQL test cluster on 127.0.0.1:$port" >&2
"$@"
