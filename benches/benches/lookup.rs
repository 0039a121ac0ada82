//! Criterion micro-benchmarks of the lookups: the static MAC table, the flow
//! cache, and one packet through the whole pipeline (cache hit and miss).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::cache::{FlowCache, FlowKey};
use dataplane::flow::FlowDesc;
use dataplane::ids::{DatapathIdx, PortId};
use dataplane::packet::HeapBuf;
use dataplane::pipeline::PacketMeta;
use dataplane::pipeline::{self, NoTrace};
use dataplane::tables::{mac_key, Tables};
use dataplane::wire::MacAddr;
use switchyard_bench::topology;

fn lookups(c: &mut Criterion) {
    let tables = Tables::compile(&topology()).unwrap();
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let key = mac_key(DatapathIdx(0), MacAddr([2, 0, 0, 0, 0, 7]));
    g.bench_function("mac_table", |b| {
        b.iter(|| tables.macs.get(black_box(&key)).copied())
    });

    let mut cache = FlowCache::new(8192);
    let k = FlowKey([1, 2, 3, 4, 5, 6]);
    cache.insert(k, k.hash(), pipeline::Verdict::Output(PortId(3)));
    g.bench_function("flow_cache_hit", |b| {
        b.iter(|| {
            let k = black_box(k);
            cache.lookup(&k, k.hash())
        })
    });

    let frame = "eth.src=02:00:00:00:00:00 eth.dst=02:00:00:00:00:05 ip4.src=10.0.0.1 ip4.dst=10.0.0.6 udp.dst=53 payload=18"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let mut buf = HeapBuf::from_frame(&frame);
    g.bench_function("pipeline_full", |b| {
        b.iter(|| {
            let mut meta = PacketMeta::new(PortId(0));
            pipeline::decide(&tables, &mut buf, &mut meta, &mut NoTrace)
        })
    });
    let mut cache = FlowCache::new(8192);
    g.bench_function("pipeline_cached", |b| {
        b.iter(|| pipeline::decide_cached(&tables, &mut cache, &mut buf, PortId(0)))
    });
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
