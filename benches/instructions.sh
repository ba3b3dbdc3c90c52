#!/usr/bin/env bash
# Instructions per reading of each stage of the ingester's pipeline, counted by
# valgrind's callgrind (deterministic: the same build gives the same count, where wall
# time on this shared VM swings by tens of percent). Side by side in one run: every
# build given, each stage, against the `none` run of the same build.
#
#   benches/instructions.sh                          # this checkout's build
#   BASE=/path/to/other/instructions benches/instructions.sh   # and another build beside it
#   ENVELOPES=200 READINGS=100 benches/instructions.sh
#   ENVELOPES=8192 READINGS=1 GROUP=256 benches/instructions.sh   # the 1-reading shape, grouped
#   ENVELOPES=8192 READINGS=1 GROUP=256 PATIENTS=20000 benches/instructions.sh   # over a fleet
#
# Environment: ENVELOPES (100), READINGS per envelope (100; 1 for the 1-reading shape),
# GROUP (envelopes per transaction, 1), PATIENTS (0: one gateway's cuff of the example
# registry; more: the cuffs of a simulated fleet of that many patients, its registry
# parsed in every run, so slow under valgrind beyond some 20 000), STAGES ("decode
# prepare commit"), BASE (a second build of the example to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=instructions.sh
command -v valgrind >/dev/null || { echo "$NAME: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
ENVELOPES=${ENVELOPES:-100}
READINGS=${READINGS:-100}
GROUP=${GROUP:-1}
PATIENTS=${PATIENTS:-0}
STAGES=${STAGES:-"decode prepare commit"}
cargo build --release -q -p vigil-benches --example instructions
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/instructions"
count() { # binary stage → instructions executed
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$ENVELOPES" "$READINGS" "$GROUP" "$PATIENTS" 2>&1 >/dev/null |
        sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tail -n 1 | tr -d ,
}
builds=("$bin")
[ -n "${BASE:-}" ] && builds+=("$BASE")
readings=$((ENVELOPES * READINGS))
echo "$ENVELOPES envelopes of $READINGS readings, $GROUP per transaction, $PATIENTS patients (0: the example registry); instructions per reading, beyond building the envelopes"
printf '| stage |'; for b in "${builds[@]}"; do printf ' %s |' "$b"; done; echo
printf '|---|'; for _ in "${builds[@]}"; do printf -- '---|'; done; echo
declare -A none
for b in "${builds[@]}"; do none[$b]=$(count "$b" none); done
for s in $STAGES; do
    printf '| %s |' "$s"
    for b in "${builds[@]}"; do
        n=$(count "$b" "$s")
        printf ' %s |' "$(( (n - ${none[$b]}) / readings ))"
    done
    echo
done
