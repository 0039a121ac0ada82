//! switchyard's control plane: the OVSDB (RFC 7047) server and client and the OVN NB/SB schemas.
//!
//! The cloud management system writes intent into the northbound database and chassis read the
//! southbound one, both over OVSDB. [`ovsdb`] is the database engine (schemas, values,
//! transactions, durability), [`server`] puts it on the network, [`client`] is the library
//! northd-lite and the chassis controller use, and [`db`] is the `switchyard db` entry point
//! that serves the NB and SB databases from [`schemas`]. [`controller`] is the chassis
//! controller: it reads SB and programs the dataplane through its typed table API.

pub mod client;
pub mod controller;
pub mod db;
pub mod jsonrpc;
pub mod ovsdb;
pub mod scale;
pub mod schemas;
pub mod server;
