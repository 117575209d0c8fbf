#!/bin/sh
# healthcheck.sh
heartbeat_file="/app/logs/evidence/${RUN_ID}/heartbeat.jsonl"

if [ ! -f "$heartbeat_file" ]; then
  echo "FAIL: heartbeat.jsonl not found"
  exit 1
fi

# 마지막 heartbeat 시간 확인
last_epoch=$(tail -1 "$heartbeat_file" | jq -r '.epoch_time')
now=$(date +%s)
gap=$((now - last_epoch))

if [ "$gap" -gt 65 ]; then
  echo "FAIL: heartbeat stale (gap=${gap}s > 65s)"
  exit 1
fi

echo "PASS: heartbeat fresh (gap=${gap}s)"
exit 0
