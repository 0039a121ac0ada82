//! `ovn-northd-lite --ovnnb-db tcp:127.0.0.1:6641 --ovnsb-db tcp:127.0.0.1:6642`

use clap::Parser;
use ovsdb::client::Backoff;
use ovsdb::server::Remote;

/// Compiles OVN northbound intent into southbound state (active/standby on
/// the SB lock "ovn_northd").
#[derive(Parser)]
#[command(name = "ovn-northd-lite", version)]
struct Args {
    /// Northbound database (repeatable: tried in turn).
    #[arg(long = "ovnnb-db", default_value = "tcp:127.0.0.1:6641")]
    nb: Vec<Remote>,
    /// Southbound database (repeatable: tried in turn).
    #[arg(long = "ovnsb-db", default_value = "tcp:127.0.0.1:6642")]
    sb: Vec<Remote>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(northd::serve(northd::Config {
            nb: args.nb,
            sb: args.sb,
            backoff: Backoff::default(),
        }))?;
    Ok(())
}
