//! switchyard's OVSDB (RFC 7047): the database engine, its server and client, and the OVN NB/SB
//! schemas we serve. It knows nothing of the dataplane; northd-lite, the chassis controller and
//! the `switchyard` binary build on it.
//!
//! The engine's data flows one way: JSON from a client is parsed against a
//! [`schema::DatabaseSchema`] into [`datum::Datum`]s, a [`transaction::Transaction`] evaluates
//! operations over the committed [`database::Database`], and a validated [`database::Changeset`]
//! is logged by [`storage`], applied to the database and fanned out to [`monitor`]s. Nothing in
//! the engine does I/O except [`storage`]. [`server`] puts it on the network ([`jsonrpc`] is the
//! wire framing), [`client`] is the library northd-lite and the chassis controller use, and
//! [`db`] is the `switchyard db` entry point that serves the NB and SB databases from
//! [`schemas`]. [`scale_bench`] is the synthetic topology the scale benchmarks load.

pub mod client;
pub mod condition;
pub mod convert;
pub mod database;
pub mod datum;
pub mod db;
pub mod error;
pub mod jsonrpc;
pub mod lockfile;
pub mod monitor;
pub mod mutation;
pub mod parser;
pub mod scale_bench;
pub mod schema;
pub mod schema_json;
pub mod schemas;
pub mod server;
pub mod storage;
pub mod transaction;
pub mod uuidgen;

pub use database::{Changeset, Database, Row, RowChange};
pub use datum::{Atom, Datum};
pub use error::OvsdbError;
pub use schema::DatabaseSchema;
