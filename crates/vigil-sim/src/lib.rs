//! Vigil's simulated fleet: patients with plausible, varied physiology, their home
//! gateways and devices, and the registry that describes them.
//!
//! One simulator serves `vigil demo`, tests and (with the edge-agent issue) the
//! gateway simulator, which will turn the same readings into real GATT bytes.
//!
//! - [`fleet::Fleet`]: a discrete-event simulation moved by its caller
//!   ([`fleet::Fleet::advance`]), so one injected clock (the demo's accelerated clock,
//!   or a test's instants) drives it; it never reads the wall clock. Deterministic: the
//!   same [`fleet::FleetConfig`] gives the same readings.
//! - Physiology: blood pressure with morning surges and evening dips around each
//!   patient's baseline (hypertensive or not), fasting/post-meal/bedtime glucose
//!   (night checks for insulin-treated patients), SpO2 on both scales (COPD lower),
//!   temperature, weight with a heart-failure drift, and ECG patches streaming strips
//!   of a real recording ([`ecg`]) with a derived heart rate.
//! - Incidents, one every `incident_every` of simulated time, round-robin: hypertensive
//!   crisis (with its confirming session), nocturnal hypoglycaemia (with the re-check
//!   after treatment), low SpO2, fever, tachycardia, new atrial fibrillation,
//!   hypotension; and the data-quality faults real homes produce: a glucose labelled
//!   in the wrong unit, an implausible cuff value, a meter whose clock reset, an
//!   oximeter with poor signal, a meter's memory read twice, and a visiting relative's
//!   cuff that no assignment covers.
//! - Every reading carries what the platform should make of it ([`fleet::Expect`]):
//!   stored, quarantined with which reason, or a duplicate, so end-to-end tests can
//!   check the ingester's accounting exactly.
//!
//! Invariants: routine readings are always plausible (they pass the validator);
//! readings of one device and type never share an identity except when a memory
//! re-read sends them again on purpose; each gateway's `batch_seq` increases by one
//! per envelope.

pub mod ecg;
pub mod fleet;
pub mod rng;

pub use fleet::{Expect, Fleet, FleetConfig, Publish};
