#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: a fresh data directory in a temp
# folder, listening on 127.0.0.1 on a free port, stopped and removed afterwards.
# The command sees LOOKOUT_TEST_DATABASE_URL. Nothing already running is used.
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
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U lookout lookout_test

export LOOKOUT_TEST_DATABASE_URL="postgres://lookout@127.0.0.1:$port/lookout_test"
echo "PostgreSQL test cluster on 127.0.0.1:$port" >&2
"$@"
