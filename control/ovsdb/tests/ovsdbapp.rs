//! Neutron's way of writing NB: ovsdbapp's `OvnNbApiIdlImpl` on the Python OVS IDL (what the
//! ML2/OVN driver uses) creates switches, ports with addresses and port security, port groups
//! with ACLs in Neutron's match shapes, routers with ports, NAT and routes, QoS and load
//! balancers, reads them back and deletes them, against `switchyard db`
//! (tests/python/ovsdbapp_nb.py). It skips only when `/usr/bin/python3` lacks ovsdbapp
//! (Debian's `python3-ovsdbapp`, which `.ci/install-deps` installs), and then says so loudly.

mod common;

use std::path::Path;
use std::process::Command;

use common::{OurServer, RealOvsdb};
use ovsdb::server::ServerConfig;

/// Debian's interpreter, where `python3-ovsdbapp` installs (a pyenv or venv `python3` on the
/// PATH would not see it).
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn neutron_writes_nb_through_ovsdbapp() {
    let probe = Command::new(PYTHON)
        .args(["-c", "import ovsdbapp.schema.ovn_northbound.impl_idl"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "\n*** SKIPPED neutron_writes_nb_through_ovsdbapp: {PYTHON} cannot import ovsdbapp \
             (apt-get install python3-ovsdbapp, as .ci/install-deps does) ***\n"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/ovsdbapp_nb.py");
    let run = |what: &str, port: u16| {
        let out = Command::new(PYTHON)
            .arg(&script)
            .arg(format!("tcp:127.0.0.1:{port}"))
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.trim_end().ends_with("ok"),
            "ovsdbapp against {what} failed:\n{stdout}\n{stderr}"
        );
    };
    // The script is right: it passes against ovsdb-server with OVN's NB schema.
    let real = RealOvsdb::start(&["ovn-nb.ovsschema"]);
    run("ovsdb-server", real.port);
    let ours = OurServer::start(ServerConfig::default());
    run("switchyard db", ours.nb_port());
}
