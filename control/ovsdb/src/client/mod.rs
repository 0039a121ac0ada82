//! The OVSDB client library: what northd-lite, the chassis controller and tools use.
//!
//! [`connection::Connection`] speaks JSON-RPC to one server; [`idl::Idl`] keeps a replicated
//! view of chosen tables current across reconnects and several remotes; [`rows`] turns
//! replicated rows into typed NB/SB structs; [`txn::Transaction`] builds `transact` requests.
//! It works against our server and against a real `ovsdb-server`.

pub mod connection;
pub mod idl;
mod replica;
pub mod rows;
pub mod txn;

pub use connection::{Connection, Notification};
pub use idl::{Backoff, Changes, Idl, Replica, TableRequest};
pub use rows::{RowRef, TypedRow};
pub use txn::{RowId, TransactReply, Transaction};

/// Client-side failures, with the remote or operation they concern.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {remote}: {source}")]
    Connect {
        remote: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {remote} closed")]
    Closed { remote: String },
    #[error("{method} failed: {error}")]
    Rpc {
        method: String,
        error: serde_json::Value,
    },
    #[error("operation {op} of the transaction failed: {error}: {details}")]
    Transaction {
        op: usize,
        error: String,
        details: String,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("not connected to any server")]
    NotConnected,
    #[error("no remotes given")]
    NoRemotes,
    #[error("timed out")]
    Timeout,
}
