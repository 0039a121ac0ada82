//! The OVSDB core (RFC 7047): schemas, values, the in-memory database and transactions.
//!
//! Data flows one way: JSON from a client is parsed against a [`schema::DatabaseSchema`] into
//! [`datum::Datum`]s, a [`transaction::Transaction`] evaluates operations over the committed
//! [`database::Database`], and a validated [`database::Changeset`] is logged by [`storage`],
//! applied to the database and fanned out to [`monitor`]s. Nothing here does I/O except
//! [`storage`]; the network lives in [`crate::server`].

pub mod condition;
pub mod convert;
pub mod database;
pub mod datum;
pub mod error;
pub mod monitor;
pub mod mutation;
pub mod schema;
pub mod storage;
pub mod transaction;
pub mod uuidgen;

pub use database::{Changeset, Database, Row, RowChange};
pub use datum::{Atom, Datum};
pub use error::OvsdbError;
pub use schema::DatabaseSchema;
