#!/usr/bin/env bash
# The ingester beside the broker-only baseline, measured in one run on this machine.
#
# For each scenario and each repetition: a fresh Mosquitto (persistence on, the
# settings docs/architecture.md asks for) on a free port; `vigil loadgen run --baseline`
# (a no-op QoS 1 subscriber drains the load: the ceiling); then, on the same broker, a
# fresh `vigil serve` (new store, the fleet's registry) and `vigil loadgen run
# --metrics` against it (publish until every reading is committed). Prints, per
# scenario, the median (min-max) readings per second of both, and the ratio.
#
#   benches/e2e.sh                      # every scenario, 3 repetitions
#   REPS=5 SCENARIOS="ten one" benches/e2e.sh
#   KEEP=1 benches/e2e.sh               # keep the work directory (logs, JSON, each run's /metrics)
#   PERF=1 KEEP=1 benches/e2e.sh        # also a perf profile of each ingester run
#                                       # (work directory, SCENARIO-REP.perf.data)
#   NODERED=1 SCENARIOS="one ten" benches/e2e.sh
#                                       # and the do-it-yourself flow on the same broker:
#                                       # Node-RED (benches/nodered: MQTT in, the §3.1
#                                       # range checks, an HTTP write to VictoriaMetrics)
#
# Environment: REPS (3), SECONDS_PER_RUN (10), PATIENTS (100000: the consortium scale
# of the issue; with 2 000 a patient would send about a thousand readings in ten
# seconds, all in one rule-engine window, which no home does), SCENARIOS (all:
# one ten ecg130 ecg500x12 alerts fleet), ALERT_RATE (readings/s of `alerts`, 20000),
# FLEET_PATIENTS (the `fleet` scenario's patients, 12000: 10 000 of their gateways
# publish, each on its own connection; the file-descriptor limit is raised to the
# hard limit, which must allow 10 100),
# VIGIL (target/release/vigil, built when missing), SERVE (the binary run as `vigil
# serve`: VIGIL by default; another build to compare two versions of the ingester
# under the same load generator), INGEST_TOML (lines for the ingester's [ingest]
# section, e.g. "max_batch = 256", to compare settings), PERF (record a profile),
# NODERED (also run the Node-RED flow; needs npm, and victoria-metrics, which
# scripts/test installs).
# Needs mosquitto and python3 (for free ports and the medians).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
RUN_SECONDS=${SECONDS_PER_RUN:-10}
PATIENTS=${PATIENTS:-100000}
SCENARIOS=${SCENARIOS:-"one ten ecg130 ecg500x12 alerts fleet"}
NAME=benches/e2e.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

scenario_args() {
    case "$1" in
        # As fast as the broker takes them: the baseline is then the broker's ceiling,
        # not the rate offered (at 30 000 and 150 000 readings/s offered, as these
        # scenarios were until the eighth session, the baseline received what was
        # offered and the ceiling was higher; BENCHMARKS.md).
        one) echo "--batch 1 --rate 10000000 --count $((30000 * RUN_SECONDS)) --connections 4" ;;
        ten) echo "--batch 10 --rate 100000000 --count $((150000 * RUN_SECONDS)) --connections 4" ;;
        ecg130) echo "--batch 1 --rate 10 --seconds $RUN_SECONDS --connections 1 --ecg-hz 130 --ecg-leads 1" ;;
        ecg500x12) echo "--batch 1 --rate 10 --seconds $RUN_SECONDS --connections 1 --ecg-hz 500 --ecg-leads 12" ;;
        # Alert latency at about half the sustained 1-reading rate (40 k readings/s
        # measured in the tenth session; 15 000 and 5 000 before): one reading in 200 a
        # hypertensive crisis (CRITICAL), timed from its publish to the doctor topic.
        alerts) echo "--batch 1 --rate ${ALERT_RATE:-20000} --seconds $RUN_SECONDS --connections 4 --alerts 0.005" ;;
        # 10 000 home gateways, each on its MQTT connection as in a deployment, one
        # reading a second each, 1 % out of range and 1 % sent twice.
        fleet) echo "--batch 1 --rate 10000 --seconds $RUN_SECONDS --connections 10000 --invalid 0.01 --duplicates 0.01" ;;
        *) echo "benches/e2e.sh: unknown scenario $1" >&2; return 1 ;;
    esac
}

# The fleet of a scenario: 100 000 patients (PATIENTS), the 10 000-gateway fleet
# (FLEET_PATIENTS: enough homes with vitals devices for 10 000 connections).
scenario_patients() {
    case "$1" in
        fleet) echo "${FLEET_PATIENTS:-12000}" ;;
        *) echo "$PATIENTS" ;;
    esac
}
# 10 000 connections need 10 000 descriptors in the broker and in the load generator
# (and a few more): raise the soft limit to the hard one, as a deployment's unit file
# would (LimitNOFILE).
if [[ " $SCENARIOS " == *" fleet "* ]]; then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
        echo "$NAME: the fleet scenario needs 10 100 file descriptors; the limit here is $(ulimit -n) (raise the hard limit: ulimit -Hn, /etc/security/limits.conf)" >&2
        exit 1
    fi
fi
if [ -n "${NODERED:-}" ]; then
    command -v victoria-metrics >/dev/null || { echo "$NAME: NODERED=1 needs victoria-metrics (apt-get install victoria-metrics)" >&2; exit 1; }
    [ -x benches/nodered/node_modules/.bin/node-red ] ||
        npm install --prefix benches/nodered --no-audit --no-fund --loglevel=error >&2
fi
nr_pid=""
vm_pid=""
# Node-RED with the flow of benches/nodered, writing to a fresh VictoriaMetrics, on
# free ports; nr_http is where its progress is read (/readyz, /metrics, as vigil's).
start_nodered() {
    local dir="$work/nodered-$1" vm_port nr_port
    mkdir -p "$dir/vm" "$dir/user"
    vm_port=$(free_port)
    victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$dir/vm" \
        -loggerLevel=ERROR > "$dir/vm.log" 2>&1 &
    vm_pid=$!
    wait_port "$vm_port"
    nr_port=$(free_port)
    NODERED_PORT=$nr_port NODERED_DIR="$dir/user" NODERED_FLOWS="$PWD/benches/nodered/flows.json" \
        MQTT_PORT=$port TSDB_WRITE_URL="http://127.0.0.1:$vm_port/write" \
        benches/nodered/node_modules/.bin/node-red --settings benches/nodered/settings.js \
        > "$dir/nodered.log" 2>&1 &
    nr_pid=$!
    wait_port "$nr_port"
    nr_http="127.0.0.1:$nr_port"
    # Subscribed once its MQTT node says so.
    for _ in $(seq 1 200); do
        grep -q "Connected to broker" "$dir/nodered.log" && return 0
        sleep 0.05
    done
    echo "$NAME: Node-RED did not connect to the broker:" >&2
    cat "$dir/nodered.log" >&2
    return 1
}
stop_nodered() {
    kill "$nr_pid" "$vm_pid" 2>/dev/null || true
    wait "$nr_pid" "$vm_pid" 2>/dev/null || true
    nr_pid=""
    vm_pid=""
}

echo "machine: $(nproc) cores, $(uname -sr); $(mosquitto -h 2>/dev/null | head -n 1); date: $(date -u +%F)"
echo "fleet: $PATIENTS patients (fleet scenario: ${FLEET_PATIENTS:-12000}); $REPS repetitions of $RUN_SECONDS s per scenario"
for s in $SCENARIOS; do
    args=$(scenario_args "$s")
    patients=$(scenario_patients "$s")
    REGISTRY="$work/registry-$patients.toml"
    [ -f "$REGISTRY" ] || "$VIGIL" loadgen registry --patients "$patients" > "$REGISTRY"
    for rep in $(seq 1 "$REPS"); do
        start_broker
        # shellcheck disable=SC2086
        "$VIGIL" loadgen run --patients "$patients" --broker "mqtt://127.0.0.1:$port" $args --baseline --json \
            >> "$work/$s.baseline.jsonl" 2>> "$work/$s.log"
        start_serve "$s-$rep"
        perf_pid=""
        if [ -n "${PERF:-}" ]; then
            # The software clock works on virtual machines without hardware counters; DWARF
            # unwinding (the binaries carry unwind tables) gives whole stacks.
            perf record -e cpu-clock -F 499 --call-graph dwarf -p "$serve_pid" -o "$work/$s-$rep.perf.data" 2>> "$work/perf.log" &
            perf_pid=$!
        fi
        # shellcheck disable=SC2086
        "$VIGIL" loadgen run --patients "$patients" --broker "mqtt://127.0.0.1:$port" $args \
            --metrics "http://$http" --ingester-pid "$serve_pid" --json \
            >> "$work/$s.vigil.jsonl" 2>> "$work/$s.log"
        if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
        # With KEEP, the ingester's own counters and histograms at the end of the run
        # (commit time, alert delivery time from receipt), beside the load generator's.
        if [ -n "${KEEP:-}" ]; then curl -fsS "http://$http/metrics" > "$work/$s-$rep.metrics" || true; fi
        stop_serve
        if [ -n "${NODERED:-}" ]; then
            start_nodered "$s-$rep"
            # shellcheck disable=SC2086
            "$VIGIL" loadgen run --patients "$patients" --broker "mqtt://127.0.0.1:$port" $args \
                --metrics "http://$nr_http" --ingester-pid "$nr_pid" --json \
                >> "$work/$s.nodered.jsonl" 2>> "$work/$s.log"
            stop_nodered
        fi
        stop_broker
        echo "  $s: repetition $rep of $REPS done" >&2
    done
done

python3 - "$work" $SCENARIOS <<'PY'
import json, statistics, sys
work, scenarios = sys.argv[1], sys.argv[2:]
def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
def fmt(xs):
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"
print()
print("| scenario | baseline readings/s | baseline messages/s | vigil readings/s | vigil ECG samples/s | ratio vigil/baseline | vigil CPU µs/reading | vigil peak RSS | alert latency p50 / p99 (max) |")
print("|---|---|---|---|---|---|---|---|---|")
for s in scenarios:
    b, v = load(f"{work}/{s}.baseline.jsonl"), load(f"{work}/{s}.vigil.jsonl")
    br = [x["readings_per_second"] for x in b]
    bm = [x["messages_per_second"] for x in b]
    vr = [x["readings_per_second"] for x in v]
    ve = [x["ecg_samples_per_second"] for x in v]
    rss = [x["ingester"]["peak_rss_mb"] or 0 for x in v]
    # CPU per reading stored: the ingester's own cost, which the machine's neighbours
    # move less than its rate.
    cpu = [x["ingester"].get("cpu_us_per_reading") for x in v]
    cpu = f"{statistics.median(c for c in cpu if c is not None):.1f}" if any(c is not None for c in cpu) else "-"
    ratio = statistics.median(vr) / statistics.median(br)
    lat = [x["alert_latency_ms"] for x in v if x["alert_latency_ms"]["received"]]
    alerts = "-"
    if lat:
        alerts = (f"{statistics.median([l['p50'] for l in lat]):.0f} / "
                  f"{statistics.median([l['p99'] for l in lat]):.0f} ({max(l['max'] for l in lat):.0f}) ms, "
                  f"{sum(l['received'] for l in lat)} of {sum(l['sent'] for l in lat)} alerts")
    print(f"| {s} | {fmt(br)} | {fmt(bm)} | {fmt(vr)} | {fmt(ve)} | {ratio:.2f} | {cpu} | {max(rss):.0f} MB | {alerts} |")
import os
nodered = [s for s in scenarios if os.path.exists(f"{work}/{s}.nodered.jsonl")]
if nodered:
    print()
    print("| scenario | Node-RED readings/s | ratio Node-RED/baseline | ratio vigil/Node-RED | Node-RED peak RSS |")
    print("|---|---|---|---|---|")
    for s in nodered:
        b, v, n = load(f"{work}/{s}.baseline.jsonl"), load(f"{work}/{s}.vigil.jsonl"), load(f"{work}/{s}.nodered.jsonl")
        nr = [x["readings_per_second"] for x in n]
        br = statistics.median([x["readings_per_second"] for x in b])
        vr = statistics.median([x["readings_per_second"] for x in v])
        rss = [x["ingester"]["peak_rss_mb"] or 0 for x in n]
        print(f"| {s} | {fmt(nr)} | {statistics.median(nr) / br:.2f} | {vr / statistics.median(nr):.2f} | {max(rss):.0f} MB |")
PY
