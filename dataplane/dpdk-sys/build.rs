//! Finds the system's DPDK with pkg-config, compiles the C shim with DPDK's
//! exact compiler flags, and generates bindings for the allowlisted API.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Oldest DPDK whose API and ABI the bindings and shim are written for.
const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Every flag of `pkg-config --cflags libdpdk` (include paths, but also
    // `-include rte_config.h` and `-march=...`, which decide the layout of
    // inline code and must match how DPDK itself was built).
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| {
            panic!("dpdk-sys: cannot run {pkg_config}: {e} (apt-get install pkg-config)")
        });
    if !out.status.success() {
        panic!(
            "dpdk-sys: `{pkg_config} --cflags libdpdk` failed (apt-get install libdpdk-dev): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cflags: Vec<String> = String::from_utf8(out.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    // The shim first, so that its static library precedes the DPDK shared
    // libraries it needs on the link line (they are linked --as-needed).
    let mut shim = cc::Build::new();
    shim.file("shim/shim.c").warnings(true);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("sy_dpdk_shim");

    // Dynamic linking against the system's DPDK.
    pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .statik(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "dpdk-sys: libdpdk >= {MIN_VERSION} not found (apt-get install libdpdk-dev): {e}"
            )
        });

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // EAL and devices.
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_eal_hotplug_remove")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        // Ethernet devices.
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_dev_get_mtu")
        .allowlist_function("rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_var("RTE_ETH_LINK_UP")
        // Buffers and pools.
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_type("rte_mbuf")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("LCORE_ID_ANY")
        // The shim.
        .allowlist_function("sy_.*")
        .derive_default(true)
        .generate_comments(false)
        .layout_tests(true)
        .generate()
        .expect("dpdk-sys: bindgen failed on wrapper.h");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("dpdk-sys: cannot write bindings.rs");
}
