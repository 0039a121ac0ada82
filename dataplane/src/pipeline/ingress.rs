//! Ingress binding: which logical port, on which logical switch, a local
//! port's packet enters by (OVN's `inport`, set by the physical-to-logical
//! translation before `ls_in_check_port_sec`).

use super::{Decision, Fields, PacketMeta, Tracer};
use crate::drop::DropReason;
use crate::tables::{Lport, Tables};

/// The ingress port decides the logical port.
pub const READS: Fields = Fields::IN_PORT;

/// Binds the packet to its logical ingress port, or drops it as
/// `no_binding`.
#[inline(always)]
pub fn bind<'t, T: Tracer>(
    tables: &'t Tables,
    meta: &mut PacketMeta,
    t: &mut T,
) -> Result<&'t Lport, Decision> {
    let Some(idx) = tables.lport_of(meta.in_port) else {
        trace!(
            t,
            "ingress",
            "local port {} is bound to no logical port",
            meta.in_port
        );
        return Err(Decision::drop(DropReason::NoBinding));
    };
    let lport = tables.lport(idx);
    let dp = tables.datapath(lport.datapath);
    meta.logical_inport = Some(idx);
    trace!(
        t,
        "ingress",
        "inport \"{}\" on logical switch \"{}\" (datapath {})",
        lport.name,
        dp.name,
        dp.tunnel_key
    );
    Ok(lport)
}
