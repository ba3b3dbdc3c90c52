//! The embedded MQTT broker (rumqttd), for `vigil demo` and single-node installs, so
//! nothing else needs installing. Production points at Mosquitto or a cluster.
//!
//! rumqttd only logs a failure to bind and keeps nothing across restarts (sessions
//! live in memory): the port is therefore test-bound here first, and an embedded
//! broker is documented as unfit where the ingester's persistent session must outlive
//! a process restart.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Starts the broker on `listen` (port 0: any free port) on a thread of its own and
/// returns the address it accepts connections on.
pub fn start(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    // rumqttd would only log a bind failure; find out now, and learn a port-0 choice.
    let addr = TcpListener::bind(listen)
        .and_then(|l| l.local_addr())
        .with_context(|| {
            format!("the embedded broker cannot listen on {listen} (in use?): set broker.embedded_listen")
        })?;
    let server = ServerSettings {
        name: "vigil-embedded-v4".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            // An envelope may be 16 MiB (vigil-wire's limit), plus the MQTT header.
            max_payload_size: 16 * 1024 * 1024 + 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("vigil-broker".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("vigil: the embedded broker stopped: {e}");
            }
        })
        .context("starting the embedded broker's thread")?;
    // Ready when it accepts a connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the embedded broker did not start listening on {addr} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(addr)
}
