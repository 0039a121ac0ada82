//! Routing tables: logical routers as the control plane describes them
//! ([`LogicalRouter`]: ports with a MAC and networks, static routes, learned
//! MAC bindings) and compiled for the router pipeline ([`Routers`]).
//!
//! Routes are compiled into OVN's `lr_in_ip_routing` order: a route's
//! priority is `prefix length × 3 + offset`, the offset 2 for a connected
//! network, 1 for a static `dst-ip` route and 0 for a `src-ip` one
//! (northd.c `build_route_match`, `ROUTE_PRIO_OFFSET_*`), so the longest
//! prefix wins and, at equal length, connected beats static beats source
//! routes. Static routes of the same prefix and policy form one ECMP group.
//! A lookup walks the priority levels from the highest down, one hash probe
//! each. Routed frames leave with a MAC rewrite interned here ([`Hop`]), so
//! a cached verdict names it by index.

use std::net::IpAddr;
use std::str::FromStr;

use hashbrown::HashMap;

use crate::ids::{DatapathIdx, LportIdx};
use crate::tables::{mac_key, Ipv4Cidr, Ipv6Cidr, MacIps, PortType, TableError, Tables, TunnelIds};
use crate::wire::MacAddr;

/// A router port: OVN's `Logical_Router_Port` (`mac`, `networks`) and the
/// switch port of type "router" that peers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterPort {
    pub name: String,
    /// "MAC NETWORK...", as OVN writes it into the Port_Binding's `mac`.
    pub address: MacIps,
    /// The switch port (type "router") on the other end of the patch.
    pub peer: Option<String>,
}

/// What a static route matches (OVN's `policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RoutePolicy {
    #[default]
    DstIp,
    SrcIp,
}

/// An IPv4 or IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpCidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

impl FromStr for IpCidr {
    type Err = TableError;
    fn from_str(s: &str) -> Result<IpCidr, TableError> {
        // OVN's prefix syntax is that of the address columns.
        let m: MacIps = format!("00:00:00:00:00:00 {s}").parse()?;
        match (m.ipv4.as_slice(), m.ipv6.as_slice()) {
            ([c], []) => Ok(IpCidr::V4(*c)),
            ([], [c]) => Ok(IpCidr::V6(*c)),
            _ => Err(TableError::BadAddress {
                entry: s.to_string(),
                why: "not one IP prefix".into(),
            }),
        }
    }
}

/// Where a static route sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    Ip(IpAddr),
    /// OVN's `discard` next hop: drop.
    Discard,
}

/// OVN's `Logical_Router_Static_Route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: IpCidr,
    pub policy: RoutePolicy,
    pub nexthop: NextHop,
    /// The router port to send from; none: the port whose network holds
    /// the next hop.
    pub output_port: Option<String>,
}

/// SB `MAC_Binding`: `ip` behind router port `logical_port` is at `mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacBinding {
    pub logical_port: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// A logical router.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LogicalRouter {
    pub name: String,
    pub tunnel_key: u32,
    pub ports: Vec<RouterPort>,
    pub routes: Vec<StaticRoute>,
    pub mac_bindings: Vec<MacBinding>,
    /// OVN's `options:always_learn_from_arp_request=false`: an ARP request
    /// or a neighbour solicitation teaches the router only an IP it has a
    /// binding for already (a MAC that moved), or, for ARP, one asking for
    /// the port's own address (northd.c `lr_in_lookup_neighbor` priority
    /// 110 and `lookup_arp_ip`/`lookup_nd_ip`). Replies and advertisements
    /// teach it anyway.
    pub learn_known_only: bool,
}

/// A compiled router port.
#[derive(Clone, Debug)]
pub struct Rport {
    /// Shared with the bindings it learns ([`crate::neighbor_log::Learnt`]).
    pub name: std::sync::Arc<str>,
    pub router: usize,
    pub mac: MacAddr,
    pub ipv4: Vec<Ipv4Cidr>,
    pub ipv6: Vec<Ipv6Cidr>,
    /// The port's IPv6 link-local address, the EUI-64 of `mac` (RFC 4291
    /// §2.5.6, appendix A), which OVN's `extract_lrp_networks` gives every
    /// router port: answered for (ND, echo, unreachables) like the
    /// configured addresses, never routed to (no connected route, RFC 4291
    /// §2.5.6: routers do not forward link-local destinations), never the
    /// source of a time exceeded (northd.c skips it there too).
    pub lla: std::net::Ipv6Addr,
    /// The peer switch port and its switch.
    pub peer: LportIdx,
    pub switch: DatapathIdx,
}

/// One member of a route: out of `port`, to `gateway` (none: a connected
/// network, the next hop is the destination itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub port: usize,
    pub gateway: Option<IpAddr>,
}

/// Where a route came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Connected,
    Static(RoutePolicy),
}

/// A compiled route: forward over its members (more than one: ECMP), or
/// discard.
#[derive(Clone, Debug)]
pub struct Route {
    pub prefix: IpCidr,
    pub kind: RouteKind,
    /// Empty for a discard route.
    pub members: Vec<Member>,
}

/// Routes of one family, by priority level.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Highest priority first.
    levels: Vec<Level>,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug)]
struct Level {
    priority: u16,
    plen: u8,
    on_src: bool,
    by_prefix: HashMap<u128, usize>,
}

/// An address as the tables key it: IPv4 in the low 32 bits.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn masked(addr: u128, plen: u8, width: u8) -> u128 {
    if plen == 0 {
        return 0;
    }
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    addr & (all << (width - plen)) & all
}

impl IpCidr {
    fn key(self) -> (u128, u8, u8) {
        match self {
            IpCidr::V4(c) => {
                let (a, w) = bits(IpAddr::V4(c.addr));
                (masked(a, c.prefix, w), c.prefix, w)
            }
            IpCidr::V6(c) => {
                let (a, w) = bits(IpAddr::V6(c.addr));
                (masked(a, c.prefix, w), c.prefix, w)
            }
        }
    }

    /// The prefix with its host bits cleared ("10.0.1.254/24" is the
    /// connected network 10.0.1.0/24).
    pub fn network(self) -> IpCidr {
        let (key, prefix, _) = self.key();
        match self {
            IpCidr::V4(_) => IpCidr::V4(Ipv4Cidr {
                addr: (key as u32).into(),
                prefix,
            }),
            IpCidr::V6(_) => IpCidr::V6(Ipv6Cidr {
                addr: key.into(),
                prefix,
            }),
        }
    }

    /// Whether `ip` lies in the prefix.
    pub fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpCidr::V4(c), IpAddr::V4(a)) => c.contains(a),
            (IpCidr::V6(c), IpAddr::V6(a)) => c.contains(a),
            _ => false,
        }
    }
}

impl std::fmt::Display for IpCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpCidr::V4(c) => write!(f, "{}/{}", c.addr, c.prefix),
            IpCidr::V6(c) => write!(f, "{}/{}", c.addr, c.prefix),
        }
    }
}

impl RouteTable {
    /// The highest-priority route matching `src` → `dst`.
    #[inline]
    pub fn lookup(&self, src: IpAddr, dst: IpAddr) -> Option<&Route> {
        let (s, w) = bits(src);
        let (d, _) = bits(dst);
        self.levels.iter().find_map(|l| {
            let a = if l.on_src { s } else { d };
            l.by_prefix
                .get(&masked(a, l.plen, w))
                .map(|&i| &self.routes[i])
        })
    }

    fn add(&mut self, prefix: IpCidr, kind: RouteKind, member: Option<Member>) {
        let (key, plen, _) = prefix.key();
        let (offset, on_src) = match kind {
            RouteKind::Connected => (2, false),
            RouteKind::Static(RoutePolicy::DstIp) => (1, false),
            RouteKind::Static(RoutePolicy::SrcIp) => (0, true),
        };
        let priority = u16::from(plen) * 3 + offset;
        let li = match self.levels.iter().position(|l| l.priority == priority) {
            Some(i) => i,
            None => {
                self.levels.push(Level {
                    priority,
                    plen,
                    on_src,
                    by_prefix: HashMap::new(),
                });
                self.levels.sort_by_key(|l| std::cmp::Reverse(l.priority));
                self.levels
                    .iter()
                    .position(|l| l.priority == priority)
                    .expect("just added")
            }
        };
        let level = &mut self.levels[li];
        match level.by_prefix.get(&key) {
            // A second connected network of the same prefix: the first wins.
            Some(_) if kind == RouteKind::Connected => {}
            // The same prefix and policy again: one more ECMP member
            // (a discard route stays a discard route).
            Some(&ri) => {
                let r = &mut self.routes[ri];
                if let (Some(m), false) = (member, r.members.is_empty()) {
                    if !r.members.contains(&m) {
                        r.members.push(m);
                    }
                }
            }
            None => {
                level.by_prefix.insert(key, self.routes.len());
                self.routes.push(Route {
                    prefix: prefix.network(),
                    kind,
                    members: member.into_iter().collect(),
                });
            }
        }
    }
}

/// A compiled router.
#[derive(Clone, Debug, Default)]
pub struct Router {
    pub name: String,
    pub tunnel_key: u32,
    pub ports: Vec<usize>,
    pub v4: RouteTable,
    pub v6: RouteTable,
    /// MAC bindings: (router port, IP) → MAC.
    pub neighbors: HashMap<(usize, IpAddr), MacAddr>,
    /// [`LogicalRouter::learn_known_only`].
    pub learn_known_only: bool,
}

/// The rewrite a routed frame leaves with: eth.src = the router port's MAC,
/// eth.dst = the next hop's; and where that MAC is: the port of the
/// destination switch that owns it, entered from the switch's port of type
/// "router" (`ingress`: the keys a tunnel packet carries for it, as OVN's
/// inport in the destination switch's datapath).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub src: MacAddr,
    pub dst: MacAddr,
    pub lport: LportIdx,
    pub ingress: TunnelIds,
}

/// An index into [`Routers::hops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HopIdx(pub u32);

/// Every router of the chassis, compiled.
#[derive(Clone, Debug, Default)]
pub struct Routers {
    pub routers: Vec<Router>,
    pub ports: Vec<Rport>,
    /// Switch port of type "router" → the router port it peers.
    pub by_peer: HashMap<LportIdx, usize>,
    pub hops: Vec<Hop>,
    hop_index: HashMap<(usize, MacAddr), HopIdx>,
    /// What the compilation left out and why (routes whose output port or
    /// next hop no router port has), for the controller to report.
    pub ignored: Vec<String>,
    /// Requests' rate limit and learnt bindings, kept across tables (the
    /// node gives every snapshot its own).
    pub log: std::sync::Arc<crate::neighbor_log::NeighborLog>,
}

impl Routers {
    /// The rewrite for leaving router port `port` towards `mac`.
    #[inline]
    pub fn hop(&self, port: usize, mac: MacAddr) -> Option<HopIdx> {
        self.hop_index.get(&(port, mac)).copied()
    }

    /// The hop from router `port` to `dst` (owned by `lport`), with
    /// `src` as its source MAC: the port's, or this chassis' MAC on the
    /// physical network that reaches a remote `lport`
    /// ([`crate::pipeline::chassis_mac`]).
    fn intern(
        &mut self,
        port: usize,
        src: MacAddr,
        dst: MacAddr,
        lport: LportIdx,
        ingress: TunnelIds,
    ) {
        let next = HopIdx(self.hops.len() as u32);
        if self.hop_index.try_insert((port, dst), next).is_ok() {
            self.hops.push(Hop {
                src,
                dst,
                lport,
                ingress,
            });
        }
    }
}

impl Tables {
    /// Adds `routers` to tables compiled from their switches: a router port
    /// whose peer switch port is not in the tables is left out (its switch
    /// is not on this chassis' path).
    pub fn with_routers(mut self, routers: &[LogicalRouter]) -> Tables {
        let mut rs = Routers::default();
        for (ri, lr) in routers.iter().enumerate() {
            let mut r = Router {
                name: lr.name.clone(),
                tunnel_key: lr.tunnel_key,
                learn_known_only: lr.learn_known_only,
                ..Router::default()
            };
            for p in &lr.ports {
                let Some(&peer) = p.peer.as_ref().and_then(|n| self.lport_by_name.get(n)) else {
                    continue;
                };
                let pi = rs.ports.len();
                rs.ports.push(Rport {
                    name: p.name.as_str().into(),
                    router: ri,
                    mac: p.address.mac,
                    ipv4: p.address.ipv4.clone(),
                    ipv6: p.address.ipv6.clone(),
                    lla: crate::pipeline::link_local(p.address.mac),
                    peer,
                    switch: self.lport(peer).datapath,
                });
                rs.by_peer.insert(peer, pi);
                r.ports.push(pi);
                for c in &p.address.ipv4 {
                    let m = Some(Member {
                        port: pi,
                        gateway: None,
                    });
                    r.v4.add(IpCidr::V4(*c), RouteKind::Connected, m);
                }
                for c in &p.address.ipv6 {
                    let m = Some(Member {
                        port: pi,
                        gateway: None,
                    });
                    r.v6.add(IpCidr::V6(*c), RouteKind::Connected, m);
                }
                // Every MAC of the peer switch is a possible next hop.
                let dp = self.lport(peer).datapath;
                let ingress = self.tunnel_ids[peer.get()];
                let macs: Vec<(MacAddr, LportIdx)> = self
                    .datapath(dp)
                    .ports
                    .iter()
                    .filter(|&&l| l != peer && self.lport(l).port_type != PortType::Router)
                    .flat_map(|&l| self.lport(l).macs.iter().map(move |&m| (m, l)))
                    .collect();
                for (m, l) in macs {
                    rs.intern(pi, self.hop_source(p.address.mac, l), m, l, ingress);
                }
                self.chassis_macs_in(dp, p.address.mac);
            }
            for b in &lr.mac_bindings {
                if let Some(&pi) = r
                    .ports
                    .iter()
                    .find(|&&i| *rs.ports[i].name == *b.logical_port)
                {
                    r.neighbors.insert((pi, b.ip), b.mac);
                    let p = &rs.ports[pi];
                    // A MAC no port lists is behind a port with "unknown"
                    // addresses (the switch's L2 lookup would send it
                    // there): the first, by tunnel key, takes it.
                    let owner = self
                        .macs
                        .get(&mac_key(p.switch, b.mac))
                        .or_else(|| self.datapath(p.switch).unknown.first());
                    if let Some(&l) = owner {
                        let src = self.hop_source(p.mac, l);
                        rs.intern(pi, src, b.mac, l, self.tunnel_ids[p.peer.get()]);
                    }
                }
            }
            let mut ignored = Vec::new();
            for s in &lr.routes {
                add_static(&mut r, &rs, s, &mut ignored);
            }
            rs.ignored.extend(ignored);
            rs.routers.push(r);
        }
        self.routers = rs;
        self.refresh_key_kinds();
        self
    }
}

impl Routers {
    /// The routers, their ports and routes, as `switchyard show` lists
    /// them.
    pub fn show(&self, t: &Tables) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for r in &self.routers {
            let _ = writeln!(s, "router {} (datapath {})", r.name, r.tunnel_key);
            for &i in &r.ports {
                let p = &self.ports[i];
                let nets: Vec<String> = p
                    .ipv4
                    .iter()
                    .map(|c| format!("{}/{}", c.addr, c.prefix))
                    .chain(p.ipv6.iter().map(|c| format!("{}/{}", c.addr, c.prefix)))
                    .collect();
                let _ = writeln!(
                    s,
                    "    port {} {} {} (to switch {} by \"{}\")",
                    p.name,
                    p.mac,
                    nets.join(" "),
                    t.datapath(p.switch).name,
                    t.lport(p.peer).name
                );
            }
            for route in r.v4.routes.iter().chain(&r.v6.routes) {
                let kind = match route.kind {
                    RouteKind::Connected => "connected",
                    RouteKind::Static(RoutePolicy::DstIp) => "static",
                    RouteKind::Static(RoutePolicy::SrcIp) => "static src-ip",
                };
                let via: Vec<String> = route
                    .members
                    .iter()
                    .map(|m| match m.gateway {
                        Some(g) => format!("via {g} out {}", self.ports[m.port].name),
                        None => format!("out {}", self.ports[m.port].name),
                    })
                    .collect();
                let via = if via.is_empty() {
                    "discard".to_string()
                } else {
                    via.join(", ")
                };
                let _ = writeln!(s, "    route {} {via} ({kind})", route.prefix);
            }
            // Bindings from SB's MAC_Binding and those learnt here.
            let mut bound: Vec<_> = r.neighbors.iter().collect();
            bound.sort_by_key(|((p, ip), _)| (*p, *ip));
            for ((p, ip), mac) in bound {
                let port = &self.ports[*p].name;
                let _ = writeln!(s, "    neighbor {ip} at {mac} on {port} (MAC_Binding)");
            }
        }
        s
    }
}

/// OVN's `find_static_route_outport`: the named port, or the first port
/// with a network holding the next hop.
fn add_static(r: &mut Router, rs: &Routers, s: &StaticRoute, ignored: &mut Vec<String>) {
    let kind = RouteKind::Static(s.policy);
    let member = match s.nexthop {
        NextHop::Discard => None,
        NextHop::Ip(nh) => {
            let port = r.ports.iter().copied().find(|&i| {
                let p = &rs.ports[i];
                match &s.output_port {
                    Some(name) => *p.name == **name,
                    None => match nh {
                        IpAddr::V4(a) => p.ipv4.iter().any(|c| c.contains(a)),
                        IpAddr::V6(a) => p.ipv6.iter().any(|c| c.contains(a)),
                    },
                }
            });
            let Some(port) = port else {
                ignored.push(format!(
                    "router {}: route {} via {nh}: no router port reaches the next hop",
                    r.name, s.prefix
                ));
                return;
            };
            Some(Member {
                port,
                gateway: Some(nh),
            })
        }
    };
    match s.prefix {
        IpCidr::V4(_) => r.v4.add(s.prefix, kind, member),
        IpCidr::V6(_) => r.v6.add(s.prefix, kind, member),
    }
}

/// The member of an ECMP group a flow takes: a hash of its addresses and
/// protocol, so every packet of a flow takes the same one.
#[inline]
pub fn ecmp_pick(members: &[Member], src: IpAddr, dst: IpAddr, proto: u8) -> Member {
    if members.len() == 1 {
        return members[0];
    }
    let (s, _) = bits(src);
    let (d, _) = bits(dst);
    let mut h = (s ^ d.rotate_left(64)) as u64 ^ ((s ^ d.rotate_left(64)) >> 64) as u64;
    h ^= u64::from(proto);
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    members[((h >> 32) % members.len() as u64) as usize]
}

#[cfg(test)]
mod tests;
