//! `switchyard`: the command line. It only parses arguments and wires the
//! crates together: the dataplane, the node daemon, the OVSDB server, the
//! benchmark suite.

mod config;
mod ctl;
mod demo;
mod metrics;
mod node;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

const DEFAULT_CTL: &str = "/run/switchyard/switchyard.ctl";

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A userspace virtual switch for cloud compute nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node's dataplane from a standalone configuration file.
    Run {
        /// Logical switches, ports and their local interfaces (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Where to serve Prometheus /metrics.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics: SocketAddr,
        /// The management socket (show, trace).
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
        /// Poll-mode worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Cores to pin workers to, e.g. 1 or 0,1.
        #[arg(long, value_delimiter = ',')]
        cores: Vec<usize>,
        /// Never sleep when idle (a PMD on a dedicated core).
        #[arg(long)]
        busy_poll: bool,
    },
    /// Serve the OVN northbound and southbound databases (OVSDB, RFC 7047).
    Db(control::db::DbArgs),
    /// Show a running node's switches, ports and counters.
    Show {
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
    },
    /// Explain, stage by stage, what the node does with a packet.
    ///
    /// The packet is hex bytes, or a flow description such as
    /// `eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1
    /// ip4.dst=10.0.0.2 udp.dst=53`.
    Trace {
        /// The logical ingress port (or give `inport=NAME` in the flow).
        #[arg(long)]
        inport: Option<String>,
        /// Trace against a running node's live tables (default).
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
        /// Trace offline against a configuration file instead of a node.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Hex bytes or a flow description.
        #[arg(required = true, num_args = 1..)]
        packet: Vec<String>,
    },
    /// Build a virtual network of namespace VMs on this machine and show it
    /// working (needs root).
    Demo {
        /// Leave the network up until Ctrl-C, to look around.
        #[arg(long)]
        keep: bool,
    },
    /// Run the packet benchmark suite on in-memory ports, one pinned core.
    Bench {
        /// Run only this scenario (see --list).
        #[arg(long)]
        scenario: Option<String>,
        /// List the scenarios and exit.
        #[arg(long)]
        list: bool,
        /// One JSON object per line per scenario.
        #[arg(long)]
        json: bool,
        /// Packets per scenario (after warm-up).
        #[arg(long, default_value_t = 20_000_000)]
        packets: u64,
        /// Core to pin the worker to (default: the last core).
        #[arg(long)]
        core: Option<usize>,
        /// Flow cache entries of the worker (0 disables the cache).
        #[arg(long, default_value_t = 8192)]
        flow_cache: usize,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run {
            config,
            metrics,
            ctl,
            workers,
            cores,
            busy_poll,
        } => node::run(node::NodeOptions {
            config,
            metrics,
            ctl_socket: ctl,
            workers,
            cores,
            busy_poll,
        }),
        Command::Db(args) => Ok(control::db::cli(args)?),
        Command::Show { ctl } => {
            print!("{}", ctl::request(&ctl, &ctl::Request::Show)?);
            Ok(())
        }
        Command::Trace {
            inport,
            ctl,
            config,
            packet,
        } => {
            let (inport, frame) = ctl::packet_from_args(inport, &packet)?;
            let text = match config {
                Some(path) => {
                    let (tables, local) = node::load_tables(&path)?;
                    let names: Vec<String> = local.iter().map(|l| l.interface.clone()).collect();
                    ctl::trace_text(&tables, &names, &inport, &frame)?
                }
                None => ctl::request(
                    &ctl,
                    &ctl::Request::Trace {
                        inport,
                        frame_hex: ctl::encode_hex(&frame),
                    },
                )?,
            };
            print!("{text}");
            Ok(())
        }
        Command::Demo { keep } => demo::run(keep),
        Command::Bench {
            scenario,
            list,
            json,
            packets,
            core,
            flow_cache,
        } => bench(scenario, list, json, packets, core, flow_cache),
    }
}

fn bench(
    only: Option<String>,
    list: bool,
    json: bool,
    packets: u64,
    core: Option<usize>,
    flow_cache: usize,
) -> Result<()> {
    let all = switchyard_bench::scenarios();
    if list {
        for s in &all {
            println!("{:<20} {}", s.name, s.description);
        }
        return Ok(());
    }
    let chosen: Vec<_> = all
        .iter()
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name))
        .collect();
    if chosen.is_empty() {
        anyhow::bail!("no scenario {:?} (see --list)", only.unwrap_or_default());
    }
    let core = core.or_else(|| core_affinity::get_core_ids().and_then(|c| c.last().map(|c| c.id)));
    let opts = switchyard_bench::RunOptions {
        packets,
        core,
        flow_cache,
    };
    if !json {
        println!(
            "{:<20} {:>9} {:>9} {:>9} {:>11} {:>9} {:>6} {:>8}",
            "scenario", "Mpps", "ns/pkt", "cpu ns", "packets", "flows", "cache", "RSS MiB"
        );
    }
    for s in chosen {
        let r = switchyard_bench::run(s, &opts).map_err(anyhow::Error::msg)?;
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:<20} {:>9.2} {:>9.2} {:>9.2} {:>11} {:>9} {:>5.0}% {:>8.1}",
                r.scenario,
                r.mpps,
                r.ns_per_packet,
                r.cpu_ns_per_packet,
                r.packets,
                r.flows,
                r.flow_cache_hit_rate * 100.0,
                r.rss_mib
            );
        }
    }
    Ok(())
}
