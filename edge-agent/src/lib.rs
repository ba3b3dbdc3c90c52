//! The Vigil edge agent as a library: Bluetooth sessions with health devices
//! ([`device`], written against a link the simulator in [`sim`] also implements), the
//! durable state of a home gateway ([`store`]) and the forwarder that publishes it
//! ([`forward`]). The `vigil-edge` binary and the tests use it.

#[cfg(feature = "bluetooth")]
pub mod ble;
pub mod config;
pub mod device;
mod durable;
pub mod forward;
pub mod run;
pub mod sim;
pub mod simulate;
pub mod store;
