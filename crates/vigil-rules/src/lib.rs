//! Vigil's clinical logic, pure and driven by injected time.
//!
//! - [`validate`]: the plausibility validator of `clinical/rules.md` §3.1, applied to
//!   every reading before any rule. It produces a [`validate::Validated`] reading (the
//!   only way to get one), which the store and the rule engine require, so "stored but
//!   not validated" cannot be written; or a [`validate::Rejection`] with a reason code
//!   and a message a person can act on.
//!
//! The rule engine (episodes, confirmation, overrides, escalation) arrives with issue 6
//! and will live here too, so the live pipeline and `vigil rules replay` share one
//! validator and one engine.
//!
//! Nothing here reads a clock: every instant (receipt, evaluation) is a parameter.

pub mod validate;
