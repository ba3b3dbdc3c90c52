#!/usr/bin/env bash
# The ingester's memory with a large registry under sustained load, over minutes.
#
# A registry of PATIENTS (100 000) patients, each with a home gateway and devices; a
# fresh Mosquitto and `vigil serve` on free ports; `vigil loadgen run` publishing RATE
# readings per second (10-reading envelopes, spread over every patient) for SECONDS
# (300). Prints the ingester's resident memory every 10 s, its peak, and the growth
# between the first and the last minute of the load.
#
#   benches/memory.sh
#   PATIENTS=10000 SECONDS_OF_LOAD=60 benches/memory.sh
#
# Environment: PATIENTS (100000), RATE (20000), SECONDS_OF_LOAD (300), VIGIL, SERVE,
# INGEST_TOML, KEEP as for benches/e2e.sh. Needs mosquitto and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${PATIENTS:-100000}
RATE=${RATE:-20000}
LOAD_SECONDS=${SECONDS_OF_LOAD:-300}
NAME=benches/memory.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh
REGISTRY="$work/registry.toml"

"$VIGIL" loadgen registry --patients "$PATIENTS" > "$REGISTRY"
echo "machine: $(nproc) cores, $(uname -sr); $(mosquitto -h 2>/dev/null | head -n 1); date: $(date -u +%F)"
echo "registry: $PATIENTS patients ($(du -h "$REGISTRY" | cut -f1) of TOML); load: $RATE readings/s in 10-reading envelopes for $LOAD_SECONDS s"
start_broker
start_serve memory
echo "ingester ready: $(grep VmRSS "/proc/$serve_pid/status" | tr -s ' ')"
"$VIGIL" loadgen run --patients "$PATIENTS" --broker "mqtt://127.0.0.1:$port" \
    --batch 10 --rate "$RATE" --seconds "$LOAD_SECONDS" --connections 4 --drain-timeout 900 \
    --metrics "http://$http" --ingester-pid "$serve_pid" --json \
    > "$work/memory.json" 2> "$work/memory.log"
stop_serve
stop_broker

python3 - "$work/memory.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ing = r["ingester"]
samples = ing["rss_mb_every_10s"]
print("seconds  RSS (MB)")
for t, mb in samples:
    print(f"{t:7d}  {mb:8.1f}")
first = [mb for t, mb in samples if t < 60]
last_t = samples[-1][0] if samples else 0
last = [mb for t, mb in samples if t > last_t - 60]
print(f"readings/s committed and evaluated: {r['readings_per_second']:,.0f}; stored {ing['stored']:,.0f}, "
      f"evaluated by the rules {ing['rules_evaluated']:,.0f}, alerts opened {ing['alerts_opened']:,.0f}")
print(f"peak RSS {ing['peak_rss_mb']:.0f} MB; first minute max {max(first):.0f} MB, last minute max {max(last):.0f} MB, growth {max(last) - max(first):+.0f} MB")
PY
