#!/usr/bin/env bash
# README's test command: installs and starts what the tests need, then runs them.
#   - Debian packages: dataset-fashion-mnist (dataset tests), chromium and chromium-driver
#     (report rendering and dashboard tests),
#     postgresql (distributed-study tests); installed with apt-get when missing (as root, or
#     through sudo).
#   - Python packages of tools/fixtures/requirements.txt (diffusers + torch on CPU, for the
#     reference checks some tests run).
#   - A PostgreSQL cluster on loopback with a test role; its URL goes to the tests in
#     UNAS_TEST_POSTGRES_URL (without it they start throwaway clusters themselves).
# Then `cargo test --workspace` with any arguments given to this script appended
# (e.g. `tools/test.sh -p unas-space`). .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s ====\n' "$*"; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "tools/test.sh: '$*' needs root (no sudo found); run it as root or install the packages named above" >&2; exit 1
  fi
}
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

step "system packages (Fashion-MNIST, chromium, PostgreSQL)"
missing=()
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
{ command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "all present"
fi

step "python packages for the reference checks (diffusers + torch on CPU)"
python3 -m pip install --quiet --disable-pip-version-check -r tools/fixtures/requirements.txt
python3 -m pip install --quiet --disable-pip-version-check --no-deps open-clip-torch==3.3.0

step "PostgreSQL server on loopback (search/tests/{store_pg,distributed}.rs, tests/distributed_cli.rs)"
# The Debian package's cluster, started and given a test role that may create databases (each
# test creates its own). Connections are plain TCP on 127.0.0.1; the TLS tests start a throwaway
# cluster of their own with a certificate from a test CA (search/tests/store_pg_tls.rs).
pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
  as_root pg_createcluster "$pg_version" main
fi
as_root pg_ctlcluster "$pg_version" main status >/dev/null 2>&1 || as_root pg_ctlcluster "$pg_version" main start
pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $3}')
as_postgres psql -p "$pg_port" -v ON_ERROR_STOP=1 -q <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'unas_test') THEN
    CREATE ROLE unas_test LOGIN CREATEDB PASSWORD 'unas-test-password';
  END IF;
END $$;
SQL
export UNAS_TEST_POSTGRES_URL="postgres://unas_test:unas-test-password@127.0.0.1:$pg_port/postgres"
echo "PostgreSQL $pg_version on 127.0.0.1:$pg_port (role unas_test)"

step "cargo test --workspace $*"
cargo test --workspace "$@"
