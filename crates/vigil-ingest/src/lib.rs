//! The ingester: from an MQTT publish to committed, acknowledged readings.
//!
//! Stages, each a small function with a typed hand-off:
//!
//! ```text
//! payload --decode--> readings (per-reading errors)
//!         --bind-->   device known and bound to the publishing gateway
//!         --validate--> plausible (clinical rules §3.1), or quarantined with a reason
//!         --attribute--> the patient the device measured at that time
//!         --commit--> clinical store (one transaction per group of envelopes) --> ack
//! ```
//!
//! [`pipeline::prepare`] runs the pure stages for one envelope and yields what the
//! store commits: every reading of the envelope becomes exactly one item, stored or
//! quarantined, so nothing is dropped on the way. The MQTT intake (manual acks after
//! commit, bounded in-flight window, reconnect) arrives next, with issue 4.

pub mod pipeline;
