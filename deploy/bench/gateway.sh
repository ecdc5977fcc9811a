#!/usr/bin/env bash
# Gateway benchmark: the same load on the same backend, direct, through nginx and through the
# gateway, in one run, with release builds.
#
#   deploy/bench/gateway.sh        # prints a Markdown table; the README quotes one run
#
# - backend: gateway/examples/bench_backend.rs (hyper, fixed 13-byte body, keep-alive)
# - nginx:   Debian's nginx as a private instance (own config and prefix in a temp dir, 127.0.0.1),
#            worker_processes = WORKERS, upstream keepalive pool
# - gateway: `gateway run` with `workers = WORKERS` (thread per core; the admin API and store on
#            one more runtime thread, like nginx's master), one capability on `/` in toggle state
#            `percent 50` with both sides on the backend
# - load:    Debian's wrk, same threads, connections and duration for all three
# Target: gateway req/s >= nginx's, and gateway's added p99 (over direct) <= nginx's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORKERS=${WORKERS:-2} WRK_THREADS=${WRK_THREADS:-2} CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15s} WARMUP=${WARMUP:-3s} BACKEND_THREADS=${BACKEND_THREADS:-2}

say() { printf '%s\n' "$*" >&2; }
need() {
  command -v "$1" >/dev/null 2>&1 && return
  say "installing $2 (Debian package)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null
}
need wrk wrk
[ -x /usr/sbin/nginx ] || need nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "building release binaries"
(cd "$repo" && cargo build --release -q -p gateway --bin gateway --example bench_backend)
bin="$repo/target/release"

work=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && { kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; }
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

backend_port=$(free_port) nginx_port=$(free_port) gw_port=$(free_port) admin_port=$(free_port)
"$bin/examples/bench_backend" "127.0.0.1:$backend_port" "$BACKEND_THREADS" >"$work/backend.log" 2>&1 &
PIDS+=($!)

mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $work/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream backend { server 127.0.0.1:$backend_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      tcp_nodelay on;
    }
  }
}
EOF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

cat >"$work/gateway.toml" <<EOF
listen = "127.0.0.1:$gw_port"
legacy = "http://127.0.0.1:$backend_port"
workers = $WORKERS
[admin]
listen = "127.0.0.1:$admin_port"
[store]
kind = "file"
path = "$work/toggles.json"
[[capability]]
name = "bench"
new = "http://127.0.0.1:$backend_port"
state = "percent"
percent = 50
routes = [{ prefix = "/" }]
EOF
RUST_LOG=warn TOKIO_WORKER_THREADS=1 "$bin/gateway" run --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
PIDS+=($!)

for port in "$backend_port" "$nginx_port" "$gw_port"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { say "nothing answers on port $port"; cat "$work"/*.log >&2; exit 1; }
done

# wrk --latency prints "50%  123.00us"; normalise to milliseconds.
ms() { awk -v p="$1" '$1==p { v=$2; u=v; gsub(/[0-9.]/,"",u); sub(/[a-z]+$/,"",v);
  if (u=="us") v/=1000; else if (u=="s") v*=1000; printf "%.3f", v }'; }
measure() {
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$2" >/dev/null
  out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  p50=$(ms 50% <<<"$out") p99=$(ms 99% <<<"$out")
  printf '%s %s %s %s %s\n' "$1" "$rps" "$p50" "$p99" "${errors:-none}"
}

say "measuring: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, $WORKERS proxy workers, $(nproc) cores"
results=$(
  measure direct "http://127.0.0.1:$backend_port/"
  measure nginx "http://127.0.0.1:$nginx_port/"
  measure gateway "http://127.0.0.1:$gw_port/"
)
direct_p99=$(awk '$1=="direct"{print $4}' <<<"$results")
echo "| path | req/s | p50 ms | p99 ms | added p99 ms | errors |"
echo "|---|---:|---:|---:|---:|---|"
while read -r name rps p50 p99 errs; do
  added=$(awk -v a="$p99" -v b="$direct_p99" 'BEGIN{printf "%.3f", a-b}')
  echo "| $name | $rps | $p50 | $p99 | $added | $errs |"
done <<<"$results"
