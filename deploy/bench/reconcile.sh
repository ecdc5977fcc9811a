#!/usr/bin/env bash
# Reconciliation benchmark, against the local stack (deploy/local/up), with a release build.
#
#   deploy/bench/reconcile.sh                 # 1,000,000 orders; prints a Markdown table
#   ORDERS=100000 deploy/bench/reconcile.sh   # smaller run
#
# 1. Generates ORDERS legacy orders in a fresh database with one SQL generate_series statement
#    (statuses cycle N A P S C X E; upd_ts a day ago, so the pending ones are also "stuck").
# 2. Seeds a fresh order topic with their domain events (OrderSubmitted + the status event,
#    Avro, Confluent framing, registry, Kafka transactions), leaving out the events of every
#    SKIP_EVERY-th order, which must then be reported missing.
# 3. Times one reconciliation (snapshot read + read_committed topic read + fold + compare) and
#    records its peak RSS with /usr/bin/time; checks the report counts what was planted.
#
# The program is the e2e test binary's `bench_process` entry point (tests/tests/reconcile/
# bench.rs), which calls the same `cdc_bridge::reconcile::reconcile` as `cdc-bridge reconcile`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ -f "$repo/.state/stack.env" ] && source "$repo/.state/stack.env"
PG_HOST=${FIG_PG_HOST:-127.0.0.1} PG_PORT=${FIG_PG_PORT:-54329} PG_USER=${FIG_PG_USER:-fig}
ORDERS=${ORDERS:-1000000} SKIP_EVERY=${SKIP_EVERY:-100000} FIRST=${FIRST:-1000000}
PROFILE=${PROFILE:-release}   # PROFILE=debug for a quick check of the script itself

run=figrec_$(date +%s)
work=$(mktemp -d)
conn="host=$PG_HOST port=$PG_PORT user=$PG_USER"
say() { printf '%s\n' "$*" >&2; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d "$conn dbname=postgres" "$@"; }
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$conn dbname=$run" "$@"; }

say "building the e2e test binary ($PROFILE)…"
profile_flag=--release; [ "$PROFILE" = release ] || profile_flag=
bin=$(cd "$repo" && cargo test $profile_flag -p e2e --test e2e --no-run 2>&1 \
  | sed -n 's/.*Executable tests\/main.rs (\(.*\))/\1/p' | tail -1)
[ -n "$bin" ] || { say "could not build the e2e test binary"; exit 1; }
bin="$repo/$bin"
step() { FIG_RECONCILE_BENCH=$1 FIG_REC_TOPIC="$run.order" FIG_REC_CONN="$conn dbname=$run" \
  FIG_REC_FIRST=$FIRST FIG_REC_ORDERS=$ORDERS FIG_REC_SKIP_EVERY=$SKIP_EVERY \
  FIG_REC_XID=${xid:-0} FIG_REC_LSN=${lsn:-0} FIG_REC_JSON="$work/report.json" \
  "${@:2}" "$bin" --ignored --exact reconcile::bench_process --nocapture --quiet; }

cleanup() {
  step drop >/dev/null 2>&1 || true
  psql_admin -c "DROP DATABASE IF EXISTS $run WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say "generating $ORDERS legacy orders…"
psql_admin -c "CREATE DATABASE $run"
psql_db -f "$repo/deploy/legacy/schema.sql"
t0=$(date +%s.%N)
out=$(psql_db -At <<SQL
INSERT INTO cust_mstr (cust_no, cust_nm, addr_ln1, city_nm, post_cd, ctry_cd)
  VALUES ('C1', 'Bench Customer', '1 Main St', 'Utrecht', '3511', 'NL');
BEGIN;
INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, ship_addr_ln1, ship_city_nm, ship_post_cd,
                     ship_ctry_cd, ord_stat_cd, ord_tot_amt, curr_cd, upd_ts)
  SELECT $FIRST + g, 'C1', 'Bench Customer', '1 Main St', 'Utrecht', '3511', 'NL',
         (ARRAY['N','A','P','S','C','X','E'])[1 + g % 7], 10.00, 'EUR',
         (now() AT TIME ZONE 'utc') - interval '1 day'
  FROM generate_series(0, $ORDERS - 1) g;
SELECT txid_current() % 4294967296;
COMMIT;
SELECT pg_current_wal_lsn() - '0/0'::pg_lsn;
SQL
)
xid=$(sed -n 1p <<<"$out"); lsn=$(sed -n 2p <<<"$out" | cut -d. -f1)
psql_db -c "VACUUM ANALYZE ord_hdr"
gen_s=$(echo "$(date +%s.%N) - $t0" | bc)

say "seeding the order topic…"
t0=$(date +%s.%N)
events=$(step seed | tail -1)
seed_s=$(echo "$(date +%s.%N) - $t0" | bc)

say "reconciling…"
set +e
/usr/bin/time -f '%e %M' -o "$work/time" \
  env RUST_LOG=info FIG_RECONCILE_BENCH=reconcile FIG_REC_TOPIC="$run.order" \
  FIG_REC_CONN="$conn dbname=$run" FIG_REC_JSON="$work/report.json" \
  "$bin" --ignored --exact reconcile::bench_process --nocapture --quiet >"$work/table.txt"
status=$?
set -e
read -r rec_s rss_kb < <(tail -1 "$work/time")   # "Command exited with …" may come first
sed -n '/^Reconciliation/,$p' "$work/table.txt" | head -10 >&2
missing=$(python3 -c "import json,sys; print(json.load(open('$work/report.json'))['counts']['missing'])")
matching=$(python3 -c "import json,sys; print(json.load(open('$work/report.json'))['counts']['matching'])")
want_missing=$(( (ORDERS + SKIP_EVERY - 1) / SKIP_EVERY ))
verdict=ok
[ "$status" = 1 ] && [ "$missing" = "$want_missing" ] && [ "$matching" = $((ORDERS - want_missing)) ] || verdict="UNEXPECTED (exit $status, missing $missing, matching $matching)"

cat <<MD
| orders | events | generate (SQL) | seed (Kafka) | reconcile | orders/s | peak RSS | planted missing found |
|---:|---:|---:|---:|---:|---:|---:|---|
| $ORDERS | $events | $(printf %.1f "$gen_s") s | $(printf %.1f "$seed_s") s | $rec_s s | $(echo "$ORDERS / $rec_s" | bc) | $((rss_kb / 1024)) MiB | $missing of $want_missing: $verdict |
MD
[ "$verdict" = ok ]
