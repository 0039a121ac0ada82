//! The DPDK scenarios: what each sends through which topology and how it
//! is replayed. One table, so `--list`, `benches/compare-ovs-dpdk.sh` and the
//! README name the same runs.

pub(crate) use dataplane::tables::Encap as TunnelEncap;

/// How a scenario's flows are carried.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encap {
    None,
    Vxlan,
    Geneve,
}

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) flows: usize,
    pub(crate) encap: Encap,
    /// Overlay scenarios: vm1 (encap) or vm0 (decap) lives on a remote
    /// chassis reached over an uplink with this encapsulation; encap counts
    /// tunnel packets out of the uplink sink, decap replays the remote
    /// chassis' tunnel packets into the uplink and counts inner frames
    /// delivered to vm1's sink.
    pub(crate) tunnel: Option<(TunnelEncap, bool)>,
    /// vm0 and vm1 in an allow-related security group ([`acl::security_group`]):
    /// every packet through conntrack in both ports' zones.
    pub(crate) acls: bool,
    /// vm0 and vm1 on two switches joined by a router ([`routed`]).
    pub(crate) routed: bool,
    /// The pcap is replayed once, not in a loop (`net_pcap` without
    /// `infinite_rx`): with `acls`, every packet opens a connection, and
    /// the rate is the connection setup rate. Measured from the first
    /// packet to the last one out, without a warm-up.
    pub(crate) once: bool,
}

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "dpdk-l2-1flow",
        description: "one 64-byte UDP/IPv4 flow vm0 -> vm1, port security on",
        flows: 1,
        encap: Encap::None,
        tunnel: None,
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-l2-10k",
        description: "10,000 64-byte UDP/IPv4 5-tuples vm0 -> vm1, port security on",
        flows: 10_000,
        encap: Encap::None,
        tunnel: None,
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-l2-200k",
        description: "200,000 64-byte UDP/IPv4 5-tuples vm0 -> vm1, port security on",
        flows: 200_000,
        encap: Encap::None,
        tunnel: None,
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-l2-1m",
        description: "1,000,000 64-byte UDP/IPv4 5-tuples vm0 -> vm1, port security on",
        flows: 1_000_000,
        encap: Encap::None,
        tunnel: None,
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-vxlan-10k",
        description: "10,000 64-byte flows in VXLAN (114-byte frames) vm0 -> vm1, \
                      L2-switched as UDP (see the -decap- scenarios for decapsulation)",
        flows: 10_000,
        encap: Encap::Vxlan,
        tunnel: None,
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-geneve-10k",
        description: "10,000 64-byte flows in Geneve with OVN's option (122-byte frames) \
                      vm0 -> vm1, L2-switched as UDP (see the -decap- scenarios for decapsulation)",
        flows: 10_000,
        encap: Encap::Geneve,
        tunnel: None,
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-geneve-encap-10k",
        description: "10,000 64-byte UDP flows vm0 -> vm1 on another chassis, encapsulated \
                      in Geneve out of the uplink",
        flows: 10_000,
        encap: Encap::None,
        tunnel: Some((TunnelEncap::Geneve, false)),
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-geneve-decap-10k",
        description: "10,000 Geneve-encapsulated flows from vm0 on another chassis, \
                      decapsulated and delivered to vm1",
        flows: 10_000,
        encap: Encap::None,
        tunnel: Some((TunnelEncap::Geneve, true)),
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-vxlan-encap-10k",
        description: "10,000 64-byte UDP flows vm0 -> vm1 on another chassis, encapsulated \
                      in VXLAN out of the uplink",
        flows: 10_000,
        encap: Encap::None,
        tunnel: Some((TunnelEncap::Vxlan, false)),
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-vxlan-decap-10k",
        description: "10,000 VXLAN-encapsulated flows from vm0 on another chassis, \
                      decapsulated and delivered to vm1",
        flows: 10_000,
        encap: Encap::None,
        tunnel: Some((TunnelEncap::Vxlan, true)),
        acls: false,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-acl-ct-10k",
        description: "dpdk-l2-10k through a Neutron-shaped allow-related security group: \
                      10,000 committed connections, conntrack in vm0's and vm1's zones",
        flows: 10_000,
        encap: Encap::None,
        tunnel: None,
        acls: true,
        routed: false,
        once: false,
    },
    Scenario {
        name: "dpdk-acl-ct-setup-1m",
        description: "connection setup: 1,000,000 UDP/IPv4 5-tuples vm0 -> vm1 replayed once \
                      through dpdk-acl-ct-10k's security group, every packet a new connection \
                      committed in vm0's and vm1's zones",
        flows: 1_000_000,
        encap: Encap::None,
        tunnel: None,
        acls: true,
        routed: false,
        once: true,
    },
    Scenario {
        name: "dpdk-routed-10k",
        description: "10,000 64-byte UDP/IPv4 5-tuples vm0 -> vm1 across subnets: two switches \
                      joined by one router (eth.src, eth.dst and TTL rewritten), port security on",
        flows: 10_000,
        encap: Encap::None,
        tunnel: None,
        acls: false,
        routed: true,
        once: false,
    },
    Scenario {
        name: "dpdk-routed-encap-10k",
        description: "dpdk-routed-10k with vm1 on another chassis: routed here, then \
                      encapsulated in Geneve in bench-b's datapath out of the uplink",
        flows: 10_000,
        encap: Encap::None,
        tunnel: Some((TunnelEncap::Geneve, false)),
        acls: false,
        routed: true,
        once: false,
    },
    Scenario {
        name: "dpdk-full-pipeline-10k",
        description: "dpdk-routed-encap-10k through port security and a Neutron-shaped \
                      allow-related security group: 10,000 committed connections in vm0's zone, \
                      routing, Geneve encapsulation to vm1's chassis",
        flows: 10_000,
        encap: Encap::None,
        tunnel: Some((TunnelEncap::Geneve, false)),
        acls: true,
        routed: true,
        once: false,
    },
];
