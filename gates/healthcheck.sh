#!/bin/sh
# Container healthcheck (OPS_PROTOCOL §6.2), the shell twin of `arbitrage healthcheck`.
# Exit 1 when the newest heartbeat is missing, older than MAX_AGE seconds, or loop_count did not
# move over the last STALL_BEATS beats (a live heartbeat thread over a stuck loop); else exit 0.
# A finished run (manifest sealed ended/failed) says "run ended": exit 0 if ended, 1 if failed.
#
# Usage: healthcheck.sh [run_dir | evidence_root]
#   without an argument: $EVIDENCE_ROOT/$RUN_ID, or the newest run under $EVIDENCE_ROOT
#   (default /app/logs/evidence). Parses JSON with jq when present, else python3.
set -u

max_age="${MAX_AGE:-65}"
stall_beats="${STALL_BEATS:-3}"
root="${EVIDENCE_ROOT:-/app/logs/evidence}"

newest_run() {
    # shellcheck disable=SC2012  # run ids are [a-z0-9_]; ls -t is the portable sort by mtime
    newest=$(ls -1td "$1"/*/ 2>/dev/null | head -n 1)
    printf '%s' "${newest%/}"
}

if [ $# -ge 1 ]; then
    run_dir=$1
    if [ ! -f "$run_dir/heartbeat.jsonl" ] && [ ! -f "$run_dir/manifest.json" ] && [ -d "$run_dir" ]; then
        run_dir=$(newest_run "$run_dir")
    fi
elif [ -n "${RUN_ID:-}" ]; then
    run_dir="$root/$RUN_ID"
else
    run_dir=$(newest_run "$root")
fi

heartbeat="$run_dir/heartbeat.jsonl"
if [ -z "$run_dir" ] || [ ! -f "$heartbeat" ]; then
    echo "FAIL: heartbeat.jsonl not found in ${run_dir:-$root}"
    exit 1
fi

json_field() {
    # json_field FILE KEY: the top-level KEY of the JSON object in FILE, or nothing.
    if command -v jq >/dev/null 2>&1; then
        jq -r --arg key "$2" '.[$key] // empty' "$1" 2>/dev/null
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]) or "")' "$1" "$2" 2>/dev/null
    fi
}

if [ -f "$run_dir/manifest.json" ]; then
    status=$(json_field "$run_dir/manifest.json" status)
    if [ "$status" = "ended" ] || [ "$status" = "failed" ]; then
        ended_at=$(json_field "$run_dir/manifest.json" ended_at)
        if [ "$status" = "ended" ]; then
            echo "PASS: run ended (sealed ended at ${ended_at})"
            exit 0
        fi
        echo "FAIL: run ended (sealed failed at ${ended_at})"
        exit 1
    fi
fi

# A final line without its newline is a torn append: judge only complete lines.
if [ "$(tail -c 1 "$heartbeat" | wc -l | tr -d ' ')" = "1" ]; then
    lines=$(tail -n "$stall_beats" "$heartbeat")
else
    lines=$(tail -n "$((stall_beats + 1))" "$heartbeat" | sed '$d')
fi
if [ -z "$lines" ]; then
    echo "FAIL: heartbeat.jsonl has no complete lines"
    exit 1
fi

if command -v jq >/dev/null 2>&1; then
    fields=$(printf '%s\n' "$lines" | jq -r '"\(.epoch_time) \(.loop_count)"' 2>/dev/null) || fields=""
elif command -v python3 >/dev/null 2>&1; then
    fields=$(printf '%s\n' "$lines" | python3 -c '
import json, sys
for line in sys.stdin:
    record = json.loads(line)
    print(record["epoch_time"], record["loop_count"])
' 2>/dev/null) || fields=""
else
    echo "FAIL: neither jq nor python3 is available to read heartbeat.jsonl"
    exit 1
fi
if [ -z "$fields" ] || printf '%s\n' "$fields" | grep -q null; then
    echo "FAIL: heartbeat.jsonl: last lines are not valid heartbeat records"
    exit 1
fi

last_epoch=$(printf '%s\n' "$fields" | tail -n 1 | cut -d ' ' -f 1)
last_count=$(printf '%s\n' "$fields" | tail -n 1 | cut -d ' ' -f 2)
first_count=$(printf '%s\n' "$fields" | head -n 1 | cut -d ' ' -f 2)
beats=$(printf '%s\n' "$fields" | wc -l | tr -d ' ')
now=$(date +%s)
age=$((now - ${last_epoch%.*}))

if [ "$age" -gt "$max_age" ]; then
    echo "FAIL: heartbeat stale (age=${age}s > ${max_age}s)"
    exit 1
fi
if [ "$beats" -ge "$stall_beats" ] && [ "$first_count" = "$last_count" ]; then
    echo "FAIL: loop made no progress (loop_count ${last_count} unchanged over the last ${stall_beats} beats)"
    exit 1
fi
[ "$age" -lt 0 ] && age=0
echo "PASS: heartbeat fresh (age=${age}s), loop_count ${last_count}"
exit 0
