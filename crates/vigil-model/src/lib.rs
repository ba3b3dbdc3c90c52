//! Vigil's domain model: the types every other crate speaks.
//!
//! This crate has no I/O and no async runtime. It defines
//!
//! - [`id`]: validated identifiers (gateway, device, patient, doctor, institution,
//!   alert). Every id matches the wire grammar `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, so
//!   an id is always safe inside an MQTT topic and never carries a person's name.
//! - [`vocab`]: the closed vocabularies of the wire contract (ECG findings, meal
//!   context, measurement sites, symptoms, ...).
//! - [`units`]: UCUM units as a typed enum, one unit enum per physical quantity, and
//!   the conversions to canonical units of `clinical/rules.md` §0.1 and §3.2.
//! - [`measurement`]: every reading type of wire contract v1 as a typed value.
//! - [`reading`]: a reading (device, times, measurement) and its identity, the one
//!   dedup key used everywhere (wire, store, rules, export).
//! - [`canonical`]: a measurement expressed in canonical units at rule precision
//!   (§0.12); this is what rules compare and what the store keeps beside the original.
//! - [`clock`]: injected time ([`clock::Clock`]), so nothing reads the wall clock
//!   behind a test's back.
//! - [`codes`]: LOINC / UCUM / IEEE 11073 MDC / WS 363 codes for export (§4).
//!
//! Invariants:
//! - A value of an id type is always valid; construction goes through `parse`.
//! - A [`measurement::Measurement`] only holds units its type accepts (the unit enums
//!   make any other combination unrepresentable), and every number in it is finite.
//! - Canonicalisation is total: every valid measurement has a canonical form.

pub mod canonical;
pub mod clock;
pub mod codes;
pub mod id;
pub mod measurement;
pub mod reading;
pub mod round;
pub mod units;
pub mod vocab;

pub use canonical::Canonical;
pub use id::{AlertId, DeviceId, DoctorId, GatewayId, IdError, InstitutionId, PatientId};
pub use measurement::{Measurement, ReadingType};
pub use reading::{Reading, ReadingIdentity};
