//! Vigil's telemetry sink: every committed reading, written to a time-series database
//! that speaks the InfluxDB write API (line protocol): InfluxDB 2.x and 3.x (v2
//! endpoint), InfluxDB 1.x and the 1.x compatibility endpoints (v1), VictoriaMetrics
//! (either).
//!
//! - [`line`]: points and their exact line-protocol text (escaping, precision).
//! - [`export`]: what a committed reading becomes (measurement, tags, fields, time).
//! - [`sink`]: the loop that tails the clinical store by a persisted cursor, batches,
//!   writes, retries, isolates bad points, and advances the cursor only over what the
//!   server confirmed; [`sink::check`] does one real write as a health check.
//!
//! Invariants: the cursor never passes a reading the server has not confirmed or
//! that is not kept in `sink_rejects` with the reason; a point is never written in a
//! form the server would read differently (the encoder refuses it instead).
//!
//! Why not the `influxdb2` crate: measured in `design/dependencies.md` (no batching,
//! retries or timeout, one HTTP chunk per point, NaN written as-is, a second HTTP
//! stack); this writer is small, and its encoding is benchmarked in BENCHMARKS.md.

pub mod export;
pub mod line;
pub mod sink;

pub use export::EcgExport;
pub use line::{FieldValue, LineError, Point, Precision};
pub use sink::{Api, Institutions, Secret, Sink, SinkConfig, SinkStats};
