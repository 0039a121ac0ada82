//! The controller's rounds: wake on an SB change, a local port change or a
//! one-second tick, plan from one look at the replica ([`crate::plan`]),
//! then apply the plan in this order:
//!
//! 1. the Port_Binding monitor condition, if the local bindings call for
//!    another one (then look again: rows the new condition brings in are
//!    applied before [`Idl::set_condition`] returns);
//! 2. the dataplane's tables, on a blocking thread, since
//!    [`Dataplane::install`] returns only once every worker forwards with
//!    them (seconds, on a loaded machine), which must not stall the async
//!    runtime that also serves `/metrics` and the management socket;
//! 3. the SB writes (registration, claims, releases), waiting for the rows
//!    they insert to show in the replica, so the next round cannot plan the
//!    same insert again (SB's indexes on `Chassis.name` and
//!    `Chassis_Private.name` would refuse it);
//! 4. the `nb_cfg` acknowledgement in Chassis_Private, which `ovn-nbctl
//!    --wait=hv` waits for: written only after step 2, so it means that
//!    packets flow.
//!
//! The tick keeps `switchyard_controller_sb_connected` true to the session
//! within a second, whether or not any data changes.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovsdb::client::txn::by_uuid;
use ovsdb::client::{ClientError, Idl, TableRequest, Transaction};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::plan::plan;
use crate::unenforced::{self, Unenforced};
use crate::{ControllerConfig, Dataplane, SB};

/// How long a round waits for the rows it inserted to show in the replica.
const INSERT_VISIBLE: Duration = Duration::from_secs(10);

/// What a running controller reports (for `/metrics` and `show`).
#[derive(Debug, Default)]
pub struct Status {
    /// Whether the SB session is up and synchronized (refreshed at least
    /// once a second).
    pub connected: AtomicBool,
    /// The last `nb_cfg` acknowledged in Chassis_Private.
    pub nb_cfg: AtomicI64,
    /// Port_Bindings this chassis has claimed.
    pub claimed: AtomicU64,
    unenforced: Mutex<Unenforced>,
}

impl Status {
    /// The SB intent this chassis does not enforce, as of the last round.
    pub fn unenforced(&self) -> Unenforced {
        self.unenforced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running controller; dropping it stops it (the dataplane keeps its
/// tables).
pub struct Controller {
    task: tokio::task::JoinHandle<()>,
    pub status: Arc<Status>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Controller {
    /// Starts the controller; `ports_changed` ticks when local ports come
    /// or go.
    pub fn start(
        cfg: ControllerConfig,
        dp: Arc<dyn Dataplane>,
        ports_changed: watch::Receiver<u64>,
    ) -> Result<Controller, ClientError> {
        let mut tables: Vec<TableRequest> = ["SB_Global", "Chassis", "Encap", "Datapath_Binding"]
            .into_iter()
            .map(TableRequest::all)
            .collect();
        tables.push(TableRequest {
            table: "Chassis_Private".into(),
            columns: None,
            condition: Some(json!([["name", "==", cfg.chassis]])),
        });
        tables.push(TableRequest {
            table: "Port_Binding".into(),
            columns: None,
            condition: Some(json!([false])),
        });
        tables.push(unenforced::monitor_request());
        // Routes and learned neighbours of the routers (few rows: all of
        // them; a real SB has no route table, and the IDL then skips it).
        tables.push(TableRequest::all(crate::router::ROUTES));
        tables.push(TableRequest::all("MAC_Binding"));
        let sb = Idl::start(cfg.sb.clone(), SB, tables, cfg.backoff)?;
        let status = Arc::new(Status::default());
        let task = tokio::spawn(run(cfg, sb, dp, ports_changed, status.clone()));
        Ok(Controller { task, status })
    }
}

async fn run(
    cfg: ControllerConfig,
    sb: Idl,
    dp: Arc<dyn Dataplane>,
    mut ports_changed: watch::Receiver<u64>,
    status: Arc<Status>,
) {
    let mut changed = sb.subscribe();
    let mut condition = json!([false]);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        status.connected.store(sb.is_connected(), Relaxed);
        if sb.is_connected() {
            match step(&cfg, &sb, &dp, &mut condition, &status).await {
                Ok(true) => continue, // The condition changed: look again.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("chassis controller: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            r = ports_changed.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

/// One round; Ok(true) if the monitor condition had to change first.
async fn step(
    cfg: &ControllerConfig,
    sb: &Idl,
    dp: &Arc<dyn Dataplane>,
    condition: &mut Value,
    status: &Status,
) -> Result<bool, ClientError> {
    let bindings = dp.bindings();
    let uplink = dp.uplink();
    let plan = sb.read(|r| plan(cfg, r, &bindings, uplink, &|n| dp.provider_port(n)));
    if plan.condition != *condition {
        sb.set_condition("Port_Binding", Some(plan.condition.clone()))
            .await?;
        *condition = plan.condition;
        return Ok(true);
    }
    let (switches, routers, underlay) = (plan.switches, plan.routers, plan.underlay);
    let installer = dp.clone();
    let installed =
        tokio::task::spawn_blocking(move || installer.install(switches, routers, underlay))
            .await
            .unwrap_or_else(|e| Err(format!("the installing thread failed: {e}")));
    match installed {
        Ok(true) => tracing::info!("forwarding tables updated from SB"),
        Ok(false) => {}
        Err(e) => tracing::error!("SB describes tables the dataplane rejects: {e}"),
    }
    if !plan.txn.is_empty() {
        let reply = sb.transact(&plan.txn).await?;
        for (table, id) in &plan.inserted {
            if let Some(row) = reply.uuid(id) {
                sb.wait_until(INSERT_VISIBLE, |r| r.get(table, &row).is_some())
                    .await?;
            }
        }
    }
    status.claimed.store(plan.claimed, Relaxed);
    report_unenforced(status, plan.unenforced);
    if let Some((u, have)) = plan.private {
        status.nb_cfg.store(have.max(plan.nb_cfg), Relaxed);
        if have != plan.nb_cfg {
            let mut t = Transaction::new(SB);
            t.update(
                "Chassis_Private",
                by_uuid(u),
                [
                    ("nb_cfg", json!(plan.nb_cfg)),
                    ("nb_cfg_timestamp", json!(now_ms())),
                ],
            );
            sb.transact(&t).await?;
        }
    }
    Ok(false)
}

/// Keeps the new count, and says so in the log when it changed: intent in
/// SB that this chassis does not enforce is never ignored silently.
fn report_unenforced(status: &Status, now: Unenforced) {
    let mut last = status.unenforced.lock().unwrap_or_else(|p| p.into_inner());
    if *last != now {
        if now.is_empty() {
            tracing::info!("SB holds no logical flows this chassis does not enforce");
        } else {
            tracing::warn!(
                "SB holds logical flows this chassis does not enforce: {now} \
                 (switchyard chassis enforce switchyard's typed SB tables, not ovn-northd's logical flows)"
            );
        }
        *last = now;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
