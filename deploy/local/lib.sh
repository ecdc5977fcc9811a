# Shared settings and helpers of the local stack scripts (up, down, status).
# Sourced, never run. Every setting can be overridden from the environment.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL="$REPO/deploy/local"
STATE=${FIG_STATE_DIR:-$REPO/.state}
CACHE=${FIG_CACHE_DIR:-$HOME/.cache/fig}

PG_PORT=${FIG_PG_PORT:-54329}
PG_USER=${FIG_PG_USER:-fig}
PG_BIN=${FIG_PG_BIN:-/usr/lib/postgresql/15/bin}
KAFKA_PORT=${FIG_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${FIG_KAFKA_CONTROLLER_PORT:-19093}
REGISTRY_PORT=${FIG_REGISTRY_PORT:-18081}
KAFKA_VERSION=4.1.1
RIVVEN_VERSION=0.0.22
RIVVEN_ROOT="$CACHE/rivven-schema-$RIVVEN_VERSION"
RIVVEN_BIN="$RIVVEN_ROOT/bin/rivven-schema"

PIDS="$STATE/pids"
LOGS="$STATE/logs"

say() { printf '%s\n' "$*"; }
# One clear line saying what went wrong and what to do, then stop.
die() { printf 'deploy/local: %s\n' "$*" >&2; exit 1; }

pid_of() { [ -f "$PIDS/$1.pid" ] && cat "$PIDS/$1.pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Fails when a port we are about to bind is held by a process we did not start.
ensure_port_free() {
  local service=$1 port=$2 var=$3
  if port_open "$port"; then
    die "port $port (for $service) is already taken by a process this stack did not start; stop it (ss -ltnp 'sport = :$port' shows it) or set $var to a free port"
  fi
}

# Waits until "$@" succeeds, up to $1 seconds, probing every 0.2 s. Readiness is always a real
# request to the service, never a fixed sleep.
wait_until() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  is_root || die "$* is missing; install it (apt-get install $*) or run deploy/local/up as root"
  say "installing $* from Debian's packages"
  if [ ! -f "$CACHE/.apt-updated" ]; then
    apt-get update -qq >/dev/null || die "apt-get update failed; check the package mirror"
    mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# PostgreSQL refuses to run as root; as root we run it as the 'postgres' user.
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Probes, each a real request.
probe_postgres() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -Atqc 'SELECT 1' >/dev/null; }
probe_kafka() { python3 "$LOCAL/probe_kafka.py" 127.0.0.1 "$KAFKA_PORT"; }
probe_registry() { curl -fsS -m 2 "http://127.0.0.1:$REGISTRY_PORT/subjects" >/dev/null; }
