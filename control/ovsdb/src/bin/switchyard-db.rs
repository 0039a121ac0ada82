//! Stand-alone `switchyard db`: the OVN NB/SB OVSDB server (the `switchyard` binary exposes the
//! same flags through `ovsdb::db::cli`).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "switchyard-db",
    about = "Serve the OVN northbound and southbound OVSDB databases"
)]
struct Cli {
    #[command(flatten)]
    db: ovsdb::db::DbArgs,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match ovsdb::db::cli(Cli::parse().db) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard-db: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
