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
//! 4. the bindings the routers learnt, into SB `MAC_Binding`
//!    ([`crate::neighbor`]; the tables of step 2 have them already);
//! 5. the `nb_cfg` acknowledgement in Chassis_Private, which `ovn-nbctl
//!    --wait=hv` waits for: written only after step 2, so it means that
//!    packets flow.
//!
//! The tick keeps `switchyard_controller_sb_connected` true to the session
//! within a second, whether or not any data changes.
//!
//! A round that fails is retried with a backoff that doubles from 200 ms to
//! 10 s while the same error repeats, and the error is logged when it
//! first appears (and then once a minute), not on every retry. A
//! configuration SB can never accept (an endpoint another chassis holds)
//! is not tried at all: the plan reports it ([`Status::problem`]).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovsdb::client::rows::PortBinding;
use ovsdb::client::txn::{by_uuid, clause};
use ovsdb::client::{ClientError, Idl, TableRequest, Transaction};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::neighbor::Pending;
use crate::plan::plan;
use crate::unenforced::{self, Unenforced};
use crate::{ControllerConfig, Dataplane, SB};

/// How long a round waits for the rows it inserted to show in the replica.
const INSERT_VISIBLE: Duration = Duration::from_secs(10);
/// The first and the longest wait before a failed round is retried.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How often the controller looks for bindings the routers learnt (a
/// look is one pop of an empty queue).
const LEARN_PERIOD: Duration = Duration::from_millis(20);
/// How often an error that keeps repeating is logged again.
const RELOG: Duration = Duration::from_secs(60);

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
    /// SB ACLs of local datapaths left out because they do not parse.
    pub acls_rejected: crate::acl::Rejected,
    unenforced: Mutex<Unenforced>,
    /// Why this chassis cannot register (the plan's conflict).
    conflict: Mutex<Option<String>>,
    /// What keeps its tunnels from working (the plan's warning).
    warning: Mutex<Option<String>>,
    /// The error the last round failed with, until a round succeeds.
    failure: Mutex<Option<String>>,
}

impl Status {
    /// The SB intent this chassis does not enforce, as of the last round.
    pub fn unenforced(&self) -> Unenforced {
        locked(&self.unenforced).clone()
    }

    /// What keeps this chassis from registering or from applying SB, with
    /// what to change, if anything does.
    pub fn problem(&self) -> Option<String> {
        locked(&self.conflict)
            .clone()
            .or_else(|| locked(&self.failure).clone())
            .or_else(|| locked(&self.warning).clone())
    }
}

/// Keeps `now` in `slot`; true if it differs from what was there.
fn replace(slot: &Mutex<Option<String>>, now: Option<String>) -> bool {
    let mut last = locked(slot);
    let changed = *last != now;
    *last = now;
    changed
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running controller; dropping it stops it (the dataplane keeps its
/// tables).
pub struct Controller {
    task: tokio::task::JoinHandle<()>,
    sb: Arc<Idl>,
    chassis: String,
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
        let mut tables: Vec<TableRequest> = [
            "SB_Global",
            "Chassis",
            "Encap",
            "Datapath_Binding",
            "ACL",
            "Port_Group",
            "Address_Set",
            "Meter",
            "Meter_Band",
        ]
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
        let sb = Arc::new(Idl::start(cfg.sb.clone(), SB, tables, cfg.backoff)?);
        let status = Arc::new(Status::default());
        let chassis = cfg.chassis.clone();
        let task = tokio::spawn(run(cfg, sb.clone(), dp, ports_changed, status.clone()));
        Ok(Controller {
            task,
            sb,
            chassis,
            status,
        })
    }

    /// Stops the controller and removes this chassis from SB, as
    /// `ovn-appctl -t ovn-controller exit` does: its Chassis row (and with
    /// it its Encaps and, through the weak references, the claims of its
    /// Port_Bindings) and its Chassis_Private row, so that ovn-northd's
    /// `hv_cfg` no longer waits for it. Gives up after `timeout` (SB
    /// unreachable): the rows then stay, as after a crash.
    pub async fn unregister(self, timeout: Duration) -> Result<(), ClientError> {
        self.task.abort();
        let mut t = Transaction::new(SB);
        for table in ["Chassis_Private", "Chassis"] {
            t.delete(table, vec![clause("name", "==", json!(self.chassis))]);
        }
        match tokio::time::timeout(timeout, self.sb.transact(&t)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

async fn run(
    cfg: ControllerConfig,
    sb: Arc<Idl>,
    dp: Arc<dyn Dataplane>,
    mut ports_changed: watch::Receiver<u64>,
    status: Arc<Status>,
) {
    let mut changed = sb.subscribe();
    let mut condition = json!([false]);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry = RETRY_FIRST;
    let mut logged = tokio::time::Instant::now();
    let log = dp.neighbor_log();
    let mut pending = Pending::default();
    let mut learn = tokio::time::interval(LEARN_PERIOD);
    learn.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        status.connected.store(sb.is_connected(), Relaxed);
        if sb.is_connected() {
            match step(&cfg, &sb, &dp, &mut condition, &status, &mut pending).await {
                Ok(true) => continue, // The condition changed: look again.
                Ok(false) => {
                    retry = RETRY_FIRST;
                    replace(&status.failure, None);
                }
                Err(e) => {
                    let e = format!("SB transaction failed: {e}");
                    if replace(&status.failure, Some(e.clone())) || logged.elapsed() >= RELOG {
                        tracing::warn!(
                            "chassis controller: {e}; retrying, backing off to {RETRY_MAX:?}"
                        );
                        logged = tokio::time::Instant::now();
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            }
        }
        // Wait for a change, the tick, or news from the routers.
        loop {
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                r = ports_changed.changed() => if r.is_err() { return },
                _ = tick.tick() => {}
                _ = learn.tick() => if !pending.take(&log) { continue },
            }
            break;
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
    pending: &mut Pending,
) -> Result<bool, ClientError> {
    let bindings = dp.bindings();
    let uplink = dp.uplink();
    pending.take(&dp.neighbor_log());
    let (mut plan, learnt) = sb.read(|r| {
        let provider = |n: &str| dp.provider_port(n);
        let plan = plan(cfg, r, &bindings, uplink, &provider, &status.acls_rejected);
        pending.settle(r);
        let learnt = (!pending.is_empty())
            .then(|| pending.transaction(r, &r.rows::<PortBinding>(), now_ms()));
        (plan, learnt)
    });
    pending.overlay(&mut plan.routers);
    if replace(&status.warning, plan.warning.clone()) {
        if let Some(w) = &plan.warning {
            tracing::warn!("chassis controller: {w}");
        }
    }
    if replace(&status.conflict, plan.conflict.clone()) {
        match &plan.conflict {
            Some(c) => tracing::error!("chassis controller cannot register: {c}"),
            None => tracing::info!("chassis controller: the registration conflict is gone"),
        }
    }
    if plan.condition != *condition {
        sb.set_condition("Port_Binding", Some(plan.condition.clone()))
            .await?;
        *condition = plan.condition;
        return Ok(true);
    }
    let (switches, routers, underlay, acls) =
        (plan.switches, plan.routers, plan.underlay, plan.acls);
    let installer = dp.clone();
    let installed =
        tokio::task::spawn_blocking(move || installer.install(switches, routers, underlay, acls))
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
    if let Some((txn, inserted)) = learnt {
        let reply = sb.transact(&txn).await?;
        for id in &inserted {
            if let Some(row) = reply.uuid(id) {
                sb.wait_until(INSERT_VISIBLE, |r| r.get("MAC_Binding", &row).is_some())
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
    let mut last = locked(&status.unenforced);
    if *last != now {
        if now.is_empty() {
            tracing::info!("SB holds no intent this chassis does not enforce");
        } else {
            tracing::warn!(
                "SB holds intent this chassis does not enforce: {now} \
                 (logical_flow_*: ovn-northd's logical flows, switchyard chassis enforce switchyard's typed SB tables; \
                 nb_*: NB rows ovn-northd-lite does not compile)"
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
