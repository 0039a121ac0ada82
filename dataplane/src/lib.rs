//! switchyard's dataplane: the poll-mode forwarding engine.
//!
//! Packets flow `port rx -> pipeline -> port tx` on pinned worker threads
//! ([`engine`]), in bursts of buffers ([`packet`]) parsed once into header
//! offsets ([`wire`]). The pipeline ([`pipeline`]) implements OVN logical
//! switching over immutable table snapshots ([`tables`]) fronted by a
//! per-worker flow cache ([`cache`]); every drop has a [`drop::DropReason`].
//! Logical routers ([`routes`]) join switches on the chassis that sends.
//! Logical switches span chassis through [`overlay`] (Geneve and VXLAN with
//! OVN's encoding) over an uplink port.
//! This crate knows nothing of OVSDB or the control plane: the controller,
//! or a standalone configuration file, programs it through [`tables`].

pub mod acl_log;
pub mod cache;
pub mod classifier;
pub mod conntrack;
pub mod drop;
pub mod engine;
pub mod flow;
pub mod ids;
pub mod meter;
pub mod neighbor_log;
pub mod overlay;
pub mod packet;
pub mod pipeline;
pub mod port;
pub mod reject;
pub mod responder;
pub mod routes;
pub mod tables;
pub mod wire;
