//! The Vigil edge agent as a library: the durable state of a home gateway
//! ([`store`]) and the forwarder that publishes it ([`forward`]). The `vigil-edge`
//! binary and the tests use it.

pub mod forward;
pub mod store;
