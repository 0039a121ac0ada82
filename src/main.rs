//! `switchyard`: the command line. It only parses arguments and wires the
//! crates together: the dataplane, the node daemon and its chassis
//! controller, the OVSDB server, northd-lite, the benchmark suite.

mod args;
mod backend;
mod config;
mod ctl;
mod demo;
mod metrics;
mod node;
mod plugged;

use std::path::PathBuf;

use anyhow::Result;
use args::{parse_chassis_mac, parse_encap_type, parse_mapping, parse_neighbor, EngineArgs};
use clap::{Parser, Subcommand};

pub(crate) const DEFAULT_CTL: &str = "/run/switchyard/switchyard.ctl";

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A userspace virtual switch for cloud compute nodes"
)]
struct Cli {
    /// What to log, as a tracing filter: a level (error, warn, info,
    /// debug, trace) or per-module directives such as
    /// `info,chassis=debug`. The RUST_LOG environment variable does the
    /// same; this flag wins. Default: info (warn for the demo).
    #[arg(long, global = true, env = "RUST_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a compute node: the dataplane programmed by its chassis
    /// controller from the OVN southbound database.
    Node {
        /// Chassis name in SB (OVS's system-id; default: the hostname).
        #[arg(long)]
        chassis: Option<String>,
        /// Southbound database (repeatable: tried in turn).
        #[arg(long, default_value = "tcp:127.0.0.1:6642")]
        sb: Vec<ovsdb::server::Remote>,
        /// Tunnel types this chassis offers (geneve, vxlan).
        #[arg(long, value_delimiter = ',', default_value = "geneve", value_parser = parse_encap_type)]
        encap_type: Vec<String>,
        /// This chassis' tunnel endpoint address, IPv4 or IPv6 (the
        /// dataplane answers ARP or neighbour solicitations for it on the
        /// uplink; tunnels go to chassis whose endpoint is of its family).
        #[arg(long, default_value = "127.0.0.1")]
        encap_ip: std::net::IpAddr,
        /// The port facing the underlay, for tunnels to other chassis: a
        /// kernel interface (attached with AF_PACKET), or with
        /// --uplink-devargs the name of a DPDK port.
        #[arg(long)]
        uplink: Option<String>,
        /// The uplink is a DPDK ethdev (--dpdk): a PCI address allowed with
        /// --dpdk-pci, or a vdev such as net_af_xdp0,iface=eth1 or
        /// net_tap0,iface=ul0 (OVS's options:dpdk-devargs).
        #[arg(long, requires_all = ["uplink", "dpdk"])]
        uplink_devargs: Option<String>,
        /// A physical network for localnet ports, NAME:IFACE (repeatable;
        /// OVN's ovn-bridge-mappings).
        #[arg(long = "bridge-mapping", value_parser = parse_mapping)]
        bridge_mappings: Vec<(String, String)>,
        /// This chassis' MAC on a physical network, NAME:MAC (repeatable;
        /// OVN's ovn-chassis-mac-mappings): routed frames to other chassis
        /// leave a localnet port on NAME with it as their source, not the
        /// router port's MAC, which every chassis shares.
        #[arg(long = "chassis-mac-mapping", value_parser = parse_chassis_mac)]
        chassis_macs: Vec<(String, dataplane::wire::MacAddr)>,
        /// A remote tunnel endpoint's MAC, IP=MAC (repeatable; others are
        /// resolved by ARP or neighbour discovery on the uplink).
        #[arg(long = "neighbor", value_parser = parse_neighbor)]
        neighbors: Vec<(std::net::IpAddr, dataplane::wire::MacAddr)>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Run the standalone dataplane from a configuration file (no SB).
    Run {
        /// Logical switches, ports and their local interfaces (TOML).
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Serve the OVN northbound and southbound databases (OVSDB, RFC 7047).
    Db(ovsdb::db::DbArgs),
    /// Compile NB into SB (ovn-northd-lite; active/standby on the
    /// "ovn_northd" lock).
    Northd {
        #[arg(long = "ovnnb-db", default_value = "tcp:127.0.0.1:6641")]
        nb: Vec<ovsdb::server::Remote>,
        #[arg(long = "ovnsb-db", default_value = "tcp:127.0.0.1:6642")]
        sb: Vec<ovsdb::server::Remote>,
    },
    /// Attach a port to a running node for a logical port (as `ovs-vsctl
    /// add-port br-int NAME -- set Interface NAME type=TYPE
    /// external_ids:iface-id=LPORT`).
    ///
    /// Types (OVS's): system (a kernel interface, the default);
    /// dpdk --devargs ARGS (an ethdev: PCI address or vdev); dpdkvhostuser
    /// (a VM's vhost-user socket served by the switch at
    /// VHOST_SOCK_DIR/NAME); dpdkvhostuserclient --vhost-server-path PATH
    /// (the VM serves the socket, the switch connects and reconnects when
    /// the VM restarts). DPDK types need a node started with --dpdk.
    PortAdd {
        /// The port's name: the kernel interface for type system.
        interface: String,
        /// The logical port (Logical_Switch_Port name) it carries.
        #[arg(long)]
        iface_id: String,
        /// Largest packet accepted from the interface (default: its MTU).
        #[arg(long)]
        mtu: Option<usize>,
        /// system, dpdk, dpdkvhostuser or dpdkvhostuserclient.
        #[arg(long = "type", default_value = "system")]
        port_type: String,
        /// The ethdev of a dpdk port (options:dpdk-devargs).
        #[arg(long)]
        devargs: Option<String>,
        /// The socket a dpdkvhostuserclient port connects to
        /// (options:vhost-server-path).
        #[arg(long)]
        vhost_server_path: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
    },
    /// Detach a port from a running node (any type; a DPDK device the node
    /// hot-plugged is detached, a vhost-user server socket removed).
    PortDel {
        interface: String,
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
    },
    /// Restart a running node's chassis controller; forwarding goes on with
    /// the current tables while it reconnects and reconciles.
    RestartController {
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
    },
    /// Stop a running node. Its chassis leaves SB (Chassis, Encaps,
    /// Chassis_Private; its ports' claims go with them), as `ovn-appctl
    /// exit` does, so `ovn-nbctl --wait=hv` stops waiting for it; SIGTERM
    /// and SIGINT do the same.
    Exit {
        /// Keep the chassis in SB: the node comes back under the same name
        /// (`ovn-appctl exit --restart`).
        #[arg(long)]
        restart: bool,
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
    },
    /// List a running node's tracked connections (like `ovs-appctl
    /// dpctl/dump-conntrack`), count or flush them, of one zone or all.
    Conntrack {
        #[arg(long, default_value = DEFAULT_CTL)]
        ctl: PathBuf,
        /// Only this conntrack zone (a logical port's).
        #[arg(long)]
        zone: Option<u16>,
        /// Print the number of connections only.
        #[arg(long)]
        count: bool,
        /// Remove the connections instead.
        #[arg(long, conflicts_with = "count")]
        flush: bool,
    },
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
        /// The packet arrives on the node's uplink (hex bytes of a tunnel
        /// packet, or ARP): tunnel checks, decapsulation, local delivery.
        #[arg(long, conflicts_with_all = ["inport", "config"])]
        uplink: bool,
        /// Hex bytes or a flow description (`--help` lists the fields).
        #[arg(required = true, num_args = 1.., long_help = dataplane::flow::FIELDS_HELP)]
        packet: Vec<String>,
    },
    /// Build a virtual network of namespace VMs on this machine and show it
    /// working (needs root).
    Demo {
        /// Leave the network up until Ctrl-C, to look around.
        #[arg(long)]
        keep: bool,
        /// Tunnel over IPv6 (endpoints fd00:200::21/22, resolved by
        /// neighbour discovery) instead of IPv4.
        #[arg(long)]
        ipv6_underlay: bool,
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Errors are printed once, as one line of their causes, without a
/// backtrace (that is for panics): they are the operator's to act on.
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, joined by ": ", leaving out a cause whose text the
/// message before it already contains (errors that print their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out += ": ";
            }
            out += &text;
        }
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    // The demo narrates on stdout; its own log lines would only interleave.
    let default_filter = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    let filter = match &cli.log_level {
        Some(f) => tracing_subscriber::EnvFilter::try_new(f)
            .map_err(|e| anyhow::anyhow!("--log-level {f:?}: {e}"))?,
        None => default_filter.into(),
    };
    // Colour only for a person at a terminal: log files and journald get
    // plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run { config, engine } => {
            node::run(engine.options(), node::Programmer::Config(config))
        }
        Command::Node {
            chassis,
            sb,
            encap_type,
            encap_ip,
            uplink,
            uplink_devargs,
            bridge_mappings,
            chassis_macs,
            neighbors,
            engine,
        } => {
            let uplink = uplink.map(|name| backend::PortSpec {
                name,
                kind: match uplink_devargs {
                    Some(devargs) => backend::PortType::Dpdk { devargs },
                    None => backend::PortType::System,
                },
                mtu: None,
            });
            let hostname = hostname();
            let cfg = chassis::ControllerConfig {
                chassis: chassis.unwrap_or_else(|| hostname.clone()),
                hostname,
                sb,
                encaps: encap_type
                    .into_iter()
                    .map(|t| chassis::EncapConfig {
                        encap_type: t,
                        ip: encap_ip.to_string(),
                    })
                    .collect(),
                static_neighbors: neighbors,
                chassis_macs,
                backoff: ovsdb::client::Backoff::default(),
            };
            node::run(
                engine.options(),
                node::Programmer::Controller(
                    cfg,
                    Box::new(node::Interfaces {
                        uplink,
                        bridge_mappings,
                    }),
                ),
            )
        }
        Command::Northd { nb, sb } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(northd::serve(northd::Config {
                nb,
                sb,
                backoff: ovsdb::client::Backoff::default(),
            }))?;
            Ok(())
        }
        Command::PortAdd {
            interface,
            iface_id,
            mtu,
            port_type,
            devargs,
            vhost_server_path,
            ctl,
        } => {
            let port_type = backend::PortType::from_args(&port_type, devargs, vhost_server_path)?;
            print!(
                "{}",
                ctl::request(
                    &ctl,
                    &ctl::Request::PortAdd {
                        interface,
                        iface_id,
                        mtu,
                        port_type,
                    }
                )?
            );
            Ok(())
        }
        Command::PortDel { interface, ctl } => {
            print!(
                "{}",
                ctl::request(&ctl, &ctl::Request::PortDel { interface })?
            );
            Ok(())
        }
        Command::RestartController { ctl } => {
            print!("{}", ctl::request(&ctl, &ctl::Request::RestartController)?);
            Ok(())
        }
        Command::Exit { restart, ctl } => {
            print!("{}", ctl::request(&ctl, &ctl::Request::Exit { restart })?);
            Ok(())
        }
        Command::Db(args) => Ok(ovsdb::db::cli(args)?),
        Command::Show { ctl } => {
            print!("{}", ctl::request(&ctl, &ctl::Request::Show)?);
            Ok(())
        }
        Command::Conntrack {
            ctl,
            zone,
            count,
            flush,
        } => {
            let req = ctl::Request::Conntrack { zone, count, flush };
            print!("{}", ctl::request(&ctl, &req)?);
            Ok(())
        }
        Command::Trace {
            ctl,
            uplink: true,
            packet,
            ..
        } => {
            let frame = ctl::decode_hex(&packet.join(""))?;
            print!(
                "{}",
                ctl::request(
                    &ctl,
                    &ctl::Request::TraceUplink {
                        frame_hex: ctl::encode_hex(&frame),
                    },
                )?
            );
            Ok(())
        }
        Command::Trace {
            inport,
            ctl,
            config,
            uplink: false,
            packet,
        } => {
            let (inport, frame, built) = ctl::packet_from_args(inport, &packet)?;
            print!("{}", built.unwrap_or_default());
            let text = match config {
                Some(path) => {
                    let (tables, local) = node::load_tables(&path)?;
                    let names: Vec<String> = local.iter().map(|l| l.interface.clone()).collect();
                    ctl::trace_text(
                        &tables,
                        &dataplane::overlay::Neighbors::default(),
                        &names,
                        &inport,
                        &frame,
                    )?
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
        Command::Demo {
            keep,
            ipv6_underlay,
        } => demo::run(keep, ipv6_underlay),
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
            if r.conntrack_entries > 0 {
                println!(
                    "{:<20} conntrack: {} entries, RSS growth {:.0} bytes per connection",
                    "", r.conntrack_entries, r.rss_bytes_per_connection
                );
            }
        }
    }
    Ok(())
}
