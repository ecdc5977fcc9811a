#!/usr/bin/env bash
# Gateway benchmark: the same load on the same backend, direct, through nginx and through the
# gateway, in one run, with release builds.
#
#   deploy/bench/gateway.sh        # prints a Markdown table; the README quotes one run
#
# nginx and the gateway are measured in turn, ROUNDS times (default 3), and compared on the
# medians: on a shared 2-core machine one run moves by 10-20 % with whatever else runs.
#
# - backend: gateway/examples/bench_backend.rs (hyper, fixed 13-byte body, keep-alive)
# - nginx:   Debian's nginx as a private instance (own config and prefix in a temp dir, 127.0.0.1),
#            worker_processes = WORKERS, upstream keepalive pool
# - gateway: `gateway run` with `workers = WORKERS` (thread per core; the admin API and store on
#            one more runtime thread, like nginx's master), one capability on `/` in toggle state
#            `percent 50` with both sides on the backend
# - load:    Debian's wrk, same threads, connections and duration for all three
# Target: gateway req/s >= nginx's, and gateway's added p99 (over direct) <= nginx's.
# Beside req/s, the CPU each proxy spent per request (user and kernel µs, from /proc/PID/stat
# over the measured run): on a shared 2-core machine req/s moves with whatever else runs, while
# CPU per request barely does, so it is the figure to compare between builds.
#
# Shadow section (SHADOW=0 skips it, SHADOW=only runs it alone), after the first table:
# - throughput: a backend pair (two bench_backend processes, legacy and new); a fresh gateway with
#   the capability in state `legacy` (shadow off), then a fresh one in `shadow` at 100 %, same wrk
#   settings, SHADOW_ROUNDS times in turn (default 3). Target: the median of the rounds' primary
#   req/s with shadow on >= 90 % of shadow off. The shadow outcomes
#   (compared, dropped because the shadow slots were full, ...) are printed beside.
#   SHADOW_EXTRA adds TOML to the shadow-on capability, e.g. $'[capability.shadow]\nmax_share = 0.5'.
# - memory: POSTs of 10 MB bodies (wrk -c$BODY_CONNECTIONS, Lua script) through a fresh gateway
#   with shadow at 100 % and POST opted in, legacy and new being a small Python sink that reads
#   and drops each body (nginx's `return 200` discards bodies too slowly: ~2 req/s); once with the default shadow body bound (1 MiB: every copy is skipped) and once
#   with `max_body_bytes = 16 MiB` (every body copied for the shadow call). Reported: RSS at
#   start and peak RSS (VmHWM) of the gateway process, in MiB. Target: bounded (set by the
#   connections and the shadow slots, not by the number of requests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORKERS=${WORKERS:-2} WRK_THREADS=${WRK_THREADS:-2} CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15s} WARMUP=${WARMUP:-3s} BACKEND_THREADS=${BACKEND_THREADS:-2}
ROUNDS=${ROUNDS:-3} SHADOW=${SHADOW:-1} SHADOW_EXTRA=${SHADOW_EXTRA:-} SHADOW_ROUNDS=${SHADOW_ROUNDS:-3} BODY_CONNECTIONS=${BODY_CONNECTIONS:-8} BODY_BYTES=${BODY_BYTES:-10000000}

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
bin="${CARGO_TARGET_DIR:-$repo/target}/release"

work=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && { kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true; }
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
main_gw_pid=$!
PIDS+=($main_gw_pid)

for port in "$backend_port" "$nginx_port" "$gw_port"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { say "nothing answers on port $port"; cat "$work"/*.log >&2; exit 1; }
done

# wrk --latency prints "50%  123.00us"; normalise to milliseconds.
ms() { awk -v p="$1" '$1==p { v=$2; u=v; gsub(/[0-9.]/,"",u); sub(/[a-z]+$/,"",v);
  if (u=="us") v/=1000; else if (u=="s") v*=1000; printf "%.3f", v }'; }
# Clock ticks (utime stime) used so far by the given pids together.
cpu_ticks() { local u=0 k=0 p; for p in "$@"; do read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat"); u=$((u + a)) k=$((k + b)); done; echo "$u $k"; }
# measure NAME URL [PID...]: one wrk run; prints name, req/s, p50, p99, user and kernel µs of
# the given processes per request ("-" without pids), errors.
measure() {
  local name=$1 url=$2; shift 2
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null
  local before after; before=$(cpu_ticks "$@")
  out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
  after=$(cpu_ticks "$@")
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  p50=$(ms 50% <<<"$out") p99=$(ms 99% <<<"$out")
  cpu=$(awk -v b="$before" -v a="$after" -v n="$n" -v hz="$(getconf CLK_TCK)" -v any=$# 'BEGIN {
    if (!any || !n) { print "- -"; exit } split(b, x, " "); split(a, y, " ");
    printf "%.1f %.1f", (y[1]-x[1])*1e6/hz/n, (y[2]-x[2])*1e6/hz/n }')
  printf '%s %s %s %s %s %s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "${errors:-none}"
}

say "measuring: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, $WORKERS proxy workers, $(nproc) cores"
if [ "$SHADOW" != only ]; then
results=$(
  measure direct "http://127.0.0.1:$backend_port/"
  for round in $(seq "$ROUNDS"); do
    # nginx's master and its workers
    measure "nginx#$round" "http://127.0.0.1:$nginx_port/" "$(cat "$work/nginx.pid")" $(pgrep -P "$(cat "$work/nginx.pid")")
    measure "gateway#$round" "http://127.0.0.1:$gw_port/" "$main_gw_pid"
  done
)
direct_p99=$(awk '$1=="direct"{print $4}' <<<"$results")
echo "| path | round | req/s | p50 ms | p99 ms | added p99 ms | proxy user µs/req | proxy kernel µs/req | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
while read -r name rps p50 p99 user kernel errs; do
  added=$(awk -v a="$p99" -v b="$direct_p99" 'BEGIN{printf "%.3f", a-b}')
  echo "| ${name%%#*} | $( [[ $name == *#* ]] && echo "${name#*#}" || echo -) | $rps | $p50 | $p99 | $added | $user | $kernel | $errs |"
done <<<"$results"
# The medians over the rounds, and the gateway's share of nginx's throughput.
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
col() { awk -v p="$1" -v c="$2" 'index($1, p"#")==1 {print $c}' <<<"$results" | median; }
ng_rps=$(col nginx 2) gw_rps=$(col gateway 2)
echo
echo "median over $ROUNDS rounds: nginx $ng_rps req/s ($(col nginx 5) user + $(col nginx 6) kernel µs/req)," \
  "gateway $gw_rps req/s ($(col gateway 5) user + $(col gateway 6) kernel µs/req):" \
  "gateway/nginx = $(awk -v g="$gw_rps" -v n="$ng_rps" 'BEGIN{printf "%.2f", g/n}')"
fi

[ "$SHADOW" = 0 ] && exit 0

# ---- shadow traffic ----------------------------------------------------------------------------
# The first gateway is done; stop it so it takes no CPU from the runs below.
kill "$main_gw_pid" 2>/dev/null || true
new_port=$(free_port)
"$bin/examples/bench_backend" "127.0.0.1:$new_port" "$BACKEND_THREADS" >"$work/backend-new.log" 2>&1 &
PIDS+=($!)

# gateway_with NAME LEGACY_PORT NEW_PORT STATE_TOML [EXTRA_TOML]: starts a fresh gateway with one
# capability on `/`; sets $gw_pid, $gw_url and $admin_url.
gateway_with() {
  local name=$1 legacy=$2 new=$3 state=$4 extra=${5:-} port admin
  port=$(free_port) admin=$(free_port)
  cat >"$work/$name.toml" <<TOML
listen = "127.0.0.1:$port"
legacy = "http://127.0.0.1:$legacy"
workers = $WORKERS
[admin]
listen = "127.0.0.1:$admin"
[store]
kind = "file"
path = "$work/$name-toggles.json"
[[capability]]
name = "bench"
new = "http://127.0.0.1:$new"
$state
routes = [{ prefix = "/" }]
$extra
TOML
  RUST_LOG=warn TOKIO_WORKER_THREADS=1 "$bin/gateway" run --config "$work/$name.toml" >"$work/$name.log" 2>&1 &
  gw_pid=$!
  PIDS+=($gw_pid)
  gw_url="http://127.0.0.1:$port" admin_url="http://127.0.0.1:$admin"
  for _ in $(seq 100); do curl -sf -o /dev/null "$gw_url/" && return; sleep 0.1; done
  say "gateway $name does not answer"; cat "$work/$name.log" >&2; exit 1
}
stop_gateway() { kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; }
# Shadow outcomes from /metrics, e.g. "match=1234 saturated=56".
shadow_outcomes() {
  curl -sf "$admin_url/metrics" | awk '/^fig_gateway_shadow_requests_total[{]/ {
      o = $0; sub(/.*outcome="/, "", o); sub(/".*/, "", o)
      if ($NF > 0) printf "%s=%d ", o, $NF }'
}
shadow_all='state = "shadow"
percent = 100'
rss_mib() { awk -v k="$2:" '$1==k {printf "%.0f", $2/1024}' "/proc/$1/status"; }

say "shadow: throughput with shadow off, then at 100 %, $SHADOW_ROUNDS rounds (backend pair :$backend_port / :$new_port)"
echo
echo "| round | shadow | req/s | p50 ms | p99 ms | gateway user µs/req | gateway kernel µs/req | errors | shadow outcomes |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|"
ratios=""
for round in $(seq "$SHADOW_ROUNDS"); do
  gateway_with shadow-off "$backend_port" "$new_port" 'state = "legacy"'
  off=$(measure off "$gw_url/" "$gw_pid")
  stop_gateway
  gateway_with shadow-on "$backend_port" "$new_port" "$shadow_all" "$SHADOW_EXTRA"
  on=$(measure on "$gw_url/" "$gw_pid")
  on_outcomes=$(shadow_outcomes)
  stop_gateway
  read -r _ off_rps off_p50 off_p99 off_user off_kernel off_errs <<<"$off"
  read -r _ on_rps on_p50 on_p99 on_user on_kernel on_errs <<<"$on"
  echo "| $round | off (state legacy) | $off_rps | $off_p50 | $off_p99 | $off_user | $off_kernel | $off_errs | - |"
  echo "| $round | on, 100 % | $on_rps | $on_p50 | $on_p99 | $on_user | $on_kernel | $on_errs | ${on_outcomes:-none} |"
  ratios="$ratios $(awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "%.1f", 100 * a / b }')"
done
# The median of the per-round ratios: one round moves by ±20 % on a shared 2-core machine.
tr ' ' '\n' <<<"$ratios" | grep . | sort -n | awk '{ r[NR] = $1; all = all " " $1 }
  END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "\nprimary throughput with shadow on, %% of shadow off, per round:%s; median %.1f %% (target >= 90 %%: %s)\n", all, m, (m >= 90 ? "met" : "NOT met") }'

say "shadow: memory while posting $BODY_BYTES-byte bodies (wrk -c$BODY_CONNECTIONS -d$DURATION)"
# The backend pair for bodies: reads each request's body (Content-Length) and drops it.
cat >"$work/sink.py" <<'PY'
import asyncio, sys
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            left = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    left = int(line.split(b":")[1])
            while left > 0:
                chunk = await reader.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    servers = [await asyncio.start_server(serve, "127.0.0.1", int(p)) for p in sys.argv[1:]]
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
PY
sink_legacy_port=$(free_port) sink_new_port=$(free_port)
python3 "$work/sink.py" "$sink_legacy_port" "$sink_new_port" >"$work/sink.log" 2>&1 &
PIDS+=($!)
cat >"$work/post-body.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("x", $BODY_BYTES)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
# body_run LABEL NAME EXTRA_TOML: one fresh gateway, one wrk run, one table row.
body_run() {
  local start out rps errors
  gateway_with "shadow-mem-$2" "$sink_legacy_port" "$sink_new_port" "$shadow_all" "$3"
  start=$(rss_mib "$gw_pid" VmRSS)
  out=$(wrk -t"$WRK_THREADS" -c"$BODY_CONNECTIONS" -d"$DURATION" -s "$work/post-body.lua" "$gw_url/")
  rps=$(awk '/^Requests\/sec:/ {printf "%.1f", $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$rps" "$start" "$(rss_mib "$gw_pid" VmHWM)" \
    "${errors:-none}" "$(shadow_outcomes)"
  stop_gateway
}
shadow_post='[capability.shadow]
methods = ["GET", "HEAD", "POST"]'
echo
echo "| $BODY_BYTES-byte POSTs, shadow 100 % | req/s | RSS at start MiB | peak RSS (VmHWM) MiB | errors | shadow outcomes |"
echo "|---|---:|---:|---:|---|---|"
body_run "default bound (1 MiB): copy skipped" skip "$shadow_post"
body_run "bound 16 MiB: every body copied" copy "$shadow_post
max_body_bytes = 16777216"
