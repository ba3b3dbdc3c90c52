//! Vigil's clinical logic, pure and driven by injected time.
//!
//! - [`validate`]: the plausibility validator of `clinical/rules.md` §3.1, applied to
//!   every reading before any rule. It produces a [`validate::Validated`] reading (the
//!   only way to get one), which the store and the rule engine require, so "stored but
//!   not validated" cannot be written; or a [`validate::Rejected`] with a reason code
//!   and a message a person can act on.
//!
//! - [`engine`]: the rule engine for one patient (episodes, confirmation, hysteresis,
//!   late readings, quiet hours, escalation); `vigil rules replay` drives it, and the
//!   live pipeline will, so both share one validator and one engine. What it does not
//!   do yet is listed in its docs.
//!
//! Nothing here reads a clock: every instant (receipt, evaluation) is a parameter.

mod compact;
pub mod engine;
pub mod overrides;
pub mod ruleset;
pub mod validate;
mod window;
