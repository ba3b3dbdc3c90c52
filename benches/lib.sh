# Shared by benches/e2e.sh and benches/memory.sh (sourced): the binaries, a work
# directory removed at exit (kept with KEEP=1), a fresh Mosquitto and a fresh `vigil
# serve` on free ports. The caller sets NAME (for messages) and REGISTRY (the
# registry file the ingester runs with) before start_serve.
VIGIL=${VIGIL:-target/release/vigil}
if [ ! -x "$VIGIL" ]; then
    cargo build --release --locked --bin vigil
fi
SERVE=${SERVE:-$VIGIL}
command -v mosquitto >/dev/null || { echo "$NAME: mosquitto is needed (apt-get install mosquitto)" >&2; exit 1; }

work=$(mktemp -d)
mq_pid=""
serve_pid=""
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
    [ -n "$mq_pid" ] && kill "$mq_pid" 2>/dev/null || true
    [ -n "${nr_pid:-}" ] && kill "$nr_pid" 2>/dev/null || true
    [ -n "${vm_pid:-}" ] && kill "$vm_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "work directory: $work" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 1 200); do
        if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $1)))"; then return 0; fi
        sleep 0.05
    done
    echo "$NAME: nothing listens on port $1" >&2
    return 1
}

start_broker() {
    port=$(free_port)
    rm -rf "$work/mq" && mkdir -p "$work/mq"
    # Mosquitto started as root drops to its own user: let it write here.
    chmod 777 "$work" "$work/mq"
    cat > "$work/mq/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/mq/
max_queued_messages 1000000
max_inflight_messages 1000
max_packet_size 16842752
log_dest file $work/mq/mosquitto.log
EOF
    mosquitto -c "$work/mq/mosquitto.conf" &
    mq_pid=$!
    wait_port "$port"
}

stop_broker() { kill "$mq_pid"; wait "$mq_pid" 2>/dev/null || true; mq_pid=""; }

start_serve() {
    local data="$work/serve-$1"
    mkdir -p "$data"
    cat > "$data/vigil.toml" <<EOF
data_dir = "$data/data"
registry = "$REGISTRY"
[broker]
url = "mqtt://127.0.0.1:$port"
client_id = "bench-$1"
[http]
listen = "127.0.0.1:0"
auth = false
${INGEST_TOML:+[ingest]
$INGEST_TOML}
EOF
    "$SERVE" serve --config "$data/vigil.toml" 2> "$data/serve.log" >/dev/null &
    serve_pid=$!
    for _ in $(seq 1 400); do
        http=$(sed -n 's/.*HTTP on http:\/\/\([^ ]*\).*/\1/p' "$data/serve.log" | head -n 1)
        if [ -n "$http" ] && python3 - "$http" <<'PY'
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(f"http://{sys.argv[1]}/readyz", timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
        then return 0; fi
        sleep 0.05
    done
    echo "$NAME: vigil serve did not become ready:" >&2
    cat "$data/serve.log" >&2
    return 1
}

stop_serve() { kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""; }

