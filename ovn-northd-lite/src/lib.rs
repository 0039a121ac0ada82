//! ovn-northd-lite: compiles OVN northbound intent into southbound state.
//!
//! It replicates the NB tables it reads (NB_Global, logical switches,
//! routers and their ports) and the SB tables it writes (SB_Global,
//! Datapath_Binding, Port_Binding, and Chassis / Chassis_Private to read),
//! holds SB's `ovn_northd` lock so that of several instances one is active
//! and the others stand by, and on every change:
//!
//! 1. updates [`compute::Desired`] from the NB rows that changed (a resync
//!    of either replica recomputes everything);
//! 2. compares only the dirty rows with SB ([`sync::diff`]) and commits the
//!    differences in one transaction, which also copies `NB_Global.nb_cfg`
//!    to `SB_Global.nb_cfg` and asserts the lock;
//! 3. writes back to NB: `sb_cfg` once SB holds that configuration,
//!    `hv_cfg` = the lowest `nb_cfg` the chassis acknowledged in
//!    Chassis_Private, and each switch port's `up` from its Port_Binding.
//!
//! So `ovn-nbctl --wait=sb` returns once SB reflects a change, and
//! `--wait=hv` once every chassis forwards with it.
//!
//! ACLs, port groups and address sets become SB's typed `ACL`,
//! `Port_Group` and `Address_Set` rows ([`acl`]), their matches validated
//! by the parser the chassis compiles them with; NB's meters become SB's,
//! a fair one copied per logged ACL ([`meter`]).
//!
//! Logical routers and their ports become datapaths and patch port
//! bindings (with `peer`, and the router port's MAC and networks), and
//! their static routes SB `Logical_Router_Static_Route` rows
//! ([`router`]). There is no Logical_Flow table: each chassis derives its
//! forwarding tables from these rows directly.
//!
//! Every other NB feature (load balancers, QoS, NAT, DHCP, …) is stored but
//! not realised; [`unrealised`] counts its rows, logs the count when it
//! changes and publishes it in `SB_Global.external_ids` for every node's
//! `show` and `/metrics`.

pub mod acl;
pub mod compute;
pub mod meter;
pub mod router;
pub mod sync;
pub mod unrealised;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ovsdb::client::txn::by_uuid;
use ovsdb::client::{Backoff, Changes, ClientError, Idl, TableRequest, Transaction};
use ovsdb::server::Remote;
use serde_json::json;
use uuid::Uuid;

use acl::AclSync;
use compute::Desired;
use sync::{SbIndex, SbView, SB};

/// The SB lock that makes one northd-lite active.
pub const LOCK: &str = "ovn_northd";
const NB: &str = "OVN_Northbound";

/// Where the databases are.
#[derive(Clone, Debug)]
pub struct Config {
    pub nb: Vec<Remote>,
    pub sb: Vec<Remote>,
    pub backoff: Backoff,
}

/// A running northd-lite's connections and state.
pub struct Northd {
    nb: Idl,
    sb: Idl,
    desired: Desired,
    index: SbIndex,
    acls: AclSync,
    /// The SB transaction that failed last, to avoid retrying it hot.
    last_error: Option<Instant>,
    /// The chassis `hv_cfg` last waited for, to log when that changes.
    held_back: Vec<String>,
    /// The `sb_cfg` before the current one: a chassis still below it has
    /// missed a whole generation, not just the newest.
    prev_sb_cfg: (i64, i64),
    /// The unrealised-intent report last logged.
    unrealised: Option<unrealised::Report>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Northd {
    /// Connects to NB and SB (in the background; [`Northd::run`] waits).
    pub fn start(cfg: &Config) -> Result<Northd, ClientError> {
        // Only the columns northd reads: less to parse and to hold (a CMS
        // keeps bulky external_ids on every port).
        let cols = |table: &str, columns: &[&str]| TableRequest {
            table: table.to_string(),
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            condition: None,
        };
        let mut nb_tables = vec![
            cols("NB_Global", &["nb_cfg", "sb_cfg", "hv_cfg"]),
            cols("Logical_Switch", &["name", "ports", "acls"]),
            cols(
                "Logical_Switch_Port",
                &[
                    "name",
                    "type",
                    "addresses",
                    "port_security",
                    "options",
                    "tag",
                    "tag_request",
                    "parent_name",
                    "up",
                ],
            ),
            cols(
                "Logical_Router",
                &["name", "ports", "static_routes", "options"],
            ),
            cols(
                router::NB_ROUTES,
                &[
                    "ip_prefix",
                    "nexthop",
                    "policy",
                    "output_port",
                    "route_table",
                ],
            ),
            cols("Logical_Router_Port", &["name", "mac", "networks", "peer"]),
            cols(
                "ACL",
                &[
                    "name",
                    "priority",
                    "direction",
                    "match",
                    "action",
                    "log",
                    "severity",
                    "meter",
                ],
            ),
            cols("Port_Group", &["name", "ports", "acls"]),
            cols("Address_Set", &["name", "addresses"]),
            cols("Meter", &["name", "unit", "bands", "fair"]),
            cols("Meter_Band", &["action", "rate", "burst_size"]),
        ];
        nb_tables.extend(unrealised::monitor_requests());
        let nb = Idl::start(cfg.nb.clone(), NB, nb_tables, cfg.backoff)?;
        let sb = Idl::start_with_lock(
            cfg.sb.clone(),
            SB,
            vec![
                cols("SB_Global", &["nb_cfg", "external_ids"]),
                cols("Datapath_Binding", &["tunnel_key", "external_ids"]),
                cols(
                    "Port_Binding",
                    &[
                        "logical_port",
                        "type",
                        "datapath",
                        "tunnel_key",
                        "mac",
                        "port_security",
                        "options",
                        "tag",
                        "parent_port",
                        "requested_chassis",
                        "chassis",
                        "up",
                    ],
                ),
                TableRequest::all(router::SB_ROUTES),
                cols("Chassis", &["name"]),
                cols("Chassis_Private", &["chassis", "nb_cfg"]),
                TableRequest::all("ACL"),
                TableRequest::all("Port_Group"),
                TableRequest::all("Address_Set"),
                TableRequest::all("Meter"),
                TableRequest::all("Meter_Band"),
            ],
            cfg.backoff,
            LOCK,
        )?;
        nb.track_changes();
        sb.track_changes();
        Ok(Northd {
            nb,
            sb,
            desired: Desired::default(),
            index: SbIndex::default(),
            acls: AclSync::default(),
            last_error: None,
            held_back: Vec::new(),
            prev_sb_cfg: (0, 0),
            unrealised: None,
        })
    }

    /// NB ACLs left out of SB because their match does not parse.
    pub fn invalid_acls(&self) -> usize {
        self.acls.invalid()
    }

    /// Whether this instance holds the lock (is the active one).
    pub fn is_active(&self) -> bool {
        self.sb.has_lock()
    }

    /// Whether both replicas (NB and SB) are connected and synchronized; a
    /// connected instance without the lock is a standby.
    pub fn is_connected(&self) -> bool {
        self.nb.is_connected() && self.sb.is_connected()
    }

    /// Runs until the task is dropped.
    pub async fn run(mut self) {
        let mut nb_changed = self.nb.subscribe();
        let mut sb_changed = self.sb.subscribe();
        // Said once per change, from the start: an operator reading the
        // log of either instance knows which one writes SB.
        let mut was: Option<&str> = None;
        loop {
            let active = self.is_active() && self.is_connected();
            let state = match (self.is_connected(), active) {
                (false, _) => "not connected to NB and SB yet: idle",
                (true, true) => "lock acquired: active",
                (true, false) => {
                    "standby: waiting for the SB lock (held by another instance, if one is active)"
                }
            };
            if was != Some(state) {
                tracing::info!("{state}");
                was = Some(state);
            }
            if active {
                if let Err(e) = self.step().await {
                    tracing::warn!("SB update failed, will retry: {e}");
                    self.last_error = Some(Instant::now());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            tokio::select! {
                r = nb_changed.changed() => if r.is_err() { return },
                r = sb_changed.changed() => if r.is_err() { return },
                // Retry after a failure even if nothing else changes.
                _ = tokio::time::sleep(Duration::from_secs(1)), if self.last_error.is_some() => {}
            }
        }
    }

    /// One round: fold in what changed, push the differences to SB, then the
    /// realisation counters to NB.
    pub async fn step(&mut self) -> Result<(), ClientError> {
        let started = Instant::now();
        let nb_changes = self.nb.take_changes();
        let sb_changes = self.sb.take_changes();
        let retry = self.last_error.take().is_some();
        if retry {
            // The failed transaction's rows are still dirty-worthy: recompute.
            self.full_recompute();
        }
        let acls_changed = retry || AclSync::relevant(&nb_changes, &sb_changes);
        let (txn, nb_cfg, ops, inserted) = {
            let nb = self.nb.read_guard();
            let sb = self.sb.read_guard();
            self.index.apply(&sb, &sb_changes, &mut self.desired);
            let view = SbView {
                index: &self.index,
                sb: &sb,
            };
            self.desired.apply(&nb, &view, &nb_changes);
            let mut txn = Transaction::new(SB);
            txn.assert_lock(LOCK);
            let mut ops = sync::diff(&mut self.desired, &self.index, &sb, &mut txn);
            if acls_changed {
                let index = &self.index;
                ops += self.acls.diff(&nb, &sb, &|ls| index.datapath(ls), &mut txn);
            }
            if retry || meter::relevant(&nb_changes, &sb_changes) {
                ops += meter::diff(&nb, &sb, &mut txn);
            }
            let mut routes_pending = false;
            if retry || router::affected(&nb_changes, &sb_changes) {
                let d = router::diff(&nb, &sb, &self.index, &mut txn);
                ops += d.ops;
                routes_pending = d.pending;
            }
            let report = unrealised::count(&nb);
            unrealised::log_change(&mut self.unrealised, &report);
            ops += unrealised::diff(&report, &sb, &mut txn);
            let nb_cfg = nb
                .table("NB_Global")
                .next()
                .map_or(0, |(_, r)| r.integer("nb_cfg"));
            let sb_global = sb
                .table("SB_Global")
                .next()
                .map(|(u, r)| (u, r.integer("nb_cfg")));
            let mut bump = 0;
            match sb_global {
                None => {
                    txn.insert("SB_Global", [("nb_cfg", json!(nb_cfg))]);
                    bump = 1;
                }
                // A new router's routes follow its datapath in the next
                // round: SB reflects this configuration only then.
                Some((u, have)) if have != nb_cfg && !routes_pending => {
                    txn.update("SB_Global", by_uuid(u), [("nb_cfg", json!(nb_cfg))]);
                    bump = 1;
                }
                Some(_) => {}
            }
            (txn, nb_cfg, ops + bump, ops)
        };
        let computed = started.elapsed();
        if ops > 0 {
            self.sb.transact(&txn).await?;
            drop(txn);
            tracing::debug!(ops, ?computed, elapsed = ?started.elapsed(), "SB updated");
            if inserted > 0 {
                // Let the replica catch up with our own commit before the next
                // diff, so a row just inserted is not inserted twice.
                let _ = self
                    .sb
                    .wait_until(Duration::from_secs(5), |r| {
                        r.table("SB_Global")
                            .next()
                            .is_some_and(|(_, g)| g.integer("nb_cfg") == nb_cfg)
                    })
                    .await;
            }
        }
        self.update_nb(nb_cfg, &nb_changes, &sb_changes).await?;
        if inserted > 1000 || nb_changes.resync || sb_changes.resync {
            // A bulk round leaves large freed buffers (monitor JSON, the
            // transaction): hand them back to the OS.
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        tracing::debug!(elapsed = ?started.elapsed(), "step done");
        Ok(())
    }

    /// Marks everything for comparison on the next step (after a failure).
    fn full_recompute(&mut self) {
        let nb = self.nb.read_guard();
        let sb = self.sb.read_guard();
        let all = Changes {
            resync: true,
            ..Default::default()
        };
        self.index.apply(&sb, &all, &mut self.desired);
        let view = SbView {
            index: &self.index,
            sb: &sb,
        };
        self.desired.recompute(&nb, &view);
    }

    /// NB_Global.sb_cfg / hv_cfg and Logical_Switch_Port.up.
    async fn update_nb(
        &mut self,
        nb_cfg: i64,
        nb_changes: &Changes,
        sb_changes: &Changes,
    ) -> Result<(), ClientError> {
        let txn = {
            let nb = self.nb.read_guard();
            let sb = self.sb.read_guard();
            let mut txn = Transaction::new(NB);
            let Some((g, global)) = nb.table("NB_Global").next() else {
                return Ok(());
            };
            let sb_cfg = sb
                .table("SB_Global")
                .next()
                .map_or(0, |(_, r)| r.integer("nb_cfg"));
            let hv_cfg = sb
                .table("Chassis_Private")
                .filter(|(_, r)| r.opt_uuid("chassis").is_some())
                .map(|(_, r)| r.integer("nb_cfg"))
                .min()
                .unwrap_or(sb_cfg)
                .min(sb_cfg);
            // Name the chassis `ovn-nbctl --wait=hv` waits for, once per
            // change: one still below the previous generation (a chassis
            // that stopped without leaving SB holds every later --wait=hv
            // back), not the ones busy with the newest.
            if self.prev_sb_cfg.1 != sb_cfg {
                self.prev_sb_cfg = (self.prev_sb_cfg.1, sb_cfg);
            }
            let behind = self.prev_sb_cfg.0;
            let held_back: Vec<String> = sb
                .table("Chassis_Private")
                .filter(|(_, r)| r.opt_uuid("chassis").is_some() && r.integer("nb_cfg") < behind)
                .map(|(_, r)| format!("{} (at {})", r.string("name"), r.integer("nb_cfg")))
                .collect();
            if held_back != self.held_back {
                if !held_back.is_empty() {
                    tracing::info!(
                        "hv_cfg {hv_cfg} waits for chassis {} to reach nb_cfg {sb_cfg} \
                         (a chassis that is gone: ovn-sbctl chassis-del NAME)",
                        held_back.join(", ")
                    );
                }
                self.held_back = held_back;
            }
            let mut row = Vec::new();
            if global.integer("sb_cfg") != sb_cfg && sb_cfg <= nb_cfg {
                row.push(("sb_cfg", json!(sb_cfg)));
                row.push(("sb_cfg_timestamp", json!(now_ms())));
            }
            if global.integer("hv_cfg") != hv_cfg && hv_cfg <= nb_cfg {
                row.push(("hv_cfg", json!(hv_cfg)));
                row.push(("hv_cfg_timestamp", json!(now_ms())));
            }
            if !row.is_empty() {
                txn.update("NB_Global", by_uuid(g), row);
            }
            // OVN's ls_port_up: a VIF is up once a chassis claimed it and said
            // so. Only ports whose LSP or Port_Binding changed are looked at.
            let mut names: HashSet<String> = HashSet::new();
            let all = nb_changes.resync || sb_changes.resync;
            if !all {
                for u in sb_changes.table("Port_Binding") {
                    if let Some(pb) = sb.get("Port_Binding", u) {
                        names.insert(pb.string("logical_port"));
                    }
                }
            }
            let lsps: Vec<Uuid> = if all {
                nb.table("Logical_Switch_Port").map(|(u, _)| u).collect()
            } else {
                let mut v: Vec<Uuid> = nb_changes.table("Logical_Switch_Port").copied().collect();
                v.extend(names.iter().filter_map(|n| self.desired.nb_port(n)));
                v
            };
            for u in lsps {
                let Some(lsp) = nb.get("Logical_Switch_Port", &u) else {
                    continue;
                };
                if !lsp.string("type").is_empty() {
                    continue;
                }
                let name = lsp.string("name");
                let want = self
                    .index
                    .port_binding(&name)
                    .and_then(|pb| sb.get("Port_Binding", &pb))
                    .is_some_and(|pb| {
                        pb.opt_uuid("chassis").is_some() && pb.opt_bool("up") == Some(true)
                    });
                if lsp.opt_bool("up") != Some(want) {
                    txn.update("Logical_Switch_Port", by_uuid(u), [("up", json!(want))]);
                }
            }
            txn
        };
        if !txn.is_empty() {
            self.nb.transact(&txn).await?;
        }
        Ok(())
    }
}

/// Runs northd-lite until the process is stopped.
pub async fn serve(cfg: Config) -> Result<(), ClientError> {
    Northd::start(&cfg)?.run().await;
    Ok(())
}
