//! switchyard's dataplane: the poll-mode forwarding engine.
//!
//! Knows nothing of OVSDB or the control plane; it offers a typed table API
//! that the controller (or a standalone configuration file) programs.

pub mod wire;
