//! Criterion micro-benchmarks of the hot-path parser (`wire::layout`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flow::FlowDesc;
use dataplane::wire::layout;

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

fn parse(c: &mut Criterion) {
    let cases = [
        ("udp4", frame("eth.src=02:00:00:00:00:01 eth.dst=02:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src=1024 udp.dst=53 payload=18")),
        ("tcp6", frame("ip6.src=fd00::1 ip6.dst=fd00::2 tcp.dst=443")),
        ("arp", frame("arp arp.spa=10.0.0.1 arp.tpa=10.0.0.2 eth.dst=ff:ff:ff:ff:ff:ff")),
        ("vlan-udp4", frame("vlan.vid=100 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53")),
    ];
    let mut g = c.benchmark_group("layout::parse");
    g.throughput(Throughput::Elements(1));
    for (name, f) in &cases {
        g.bench_function(*name, |b| b.iter(|| layout::parse(black_box(f))));
    }
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
