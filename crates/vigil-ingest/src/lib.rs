//! The ingester: from an MQTT publish to committed, acknowledged readings.
//!
//! Stages, each a small function with a typed hand-off:
//!
//! ```text
//! payload --decode--> readings (per-reading errors)
//!         --bind-->   device known and bound to the publishing gateway
//!         --validate--> plausible (clinical rules §3.1), or quarantined with a reason
//!         --attribute--> the patient the device measured at that time
//!         --weight reference--> a weight > 5 kg from the last one of 48 h is unit_suspect
//!         --commit--> clinical store (one transaction per group of envelopes) --> ack
//! ```
//!
//! [`pipeline::prepare`] runs the pure stages for one envelope and yields what the
//! store commits: every reading of the envelope becomes exactly one item, stored or
//! quarantined, so nothing is dropped on the way. [`intake::Intake`] takes publishes
//! off MQTT (persistent session, manual acks), commits them in groups and acknowledges
//! each only after its commit. [`rules::RuleRunner`] evaluates every committed reading
//! with the rule engine and keeps the alert events it produces;
//! [`deliver::Deliverer`] publishes them to the doctors their level reaches, and
//! [`webhook::WebhookDeliverer`] posts them, signed, to the doctors' webhooks.
//! [`gaps::GapDetector`] requests the batches missing from a gateway's `batch_seq`
//! with a `backfill` command when a gap does not fill in time (guarantee 6).

pub mod deliver;
pub mod feed;
pub mod gaps;
pub mod intake;
pub mod pipeline;
pub mod rules;
pub mod webhook;
