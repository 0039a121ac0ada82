//! ovsdbapp's own OVN functional tests, unmodified, against both servers.
//!
//! Neutron's ML2/OVN driver reaches NB and SB through ovsdbapp, so ovsdbapp's own OVN NB and SB
//! functional tests (`ovsdbapp/tests/functional/schema/ovn_{northbound,southbound}/
//! test_impl_idl.py`, as Debian's python3-ovsdbapp 2.1.0 installs them) are the closest thing
//! to "Neutron works" that runs in CI. They run once against a real `ovsdb-server` 3.1 serving
//! OVN 23.03's own schemas (`/usr/share/ovn/*.ovsschema`) and once against `switchyard db`;
//! each time the real `ovn-northd` runs between NB and SB, as ovsdbapp's venv fixture does (the
//! SB port-binding tests wait for the `Port_Binding` it makes). `tests/python/ovsdbapp_suite.py`
//! points the tests at the running servers through their base class's `fixture_class` hook.
//!
//! The verdict: every test that passes on ovsdb-server passes on ours, except those listed in
//! [`KNOWN_DIFFERENCES`] with their cause (none today), and ours passes at least as many.

mod common;

use std::collections::BTreeSet;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::require_tool;

/// Debian's interpreter, where python3-ovsdbapp, python3-oslotest and python3-testscenarios
/// install (a pyenv or venv `python3` on the PATH would not see them).
const PYTHON: &str = "/usr/bin/python3";

/// OVN 23.03's schemas as Debian's ovn-common installs them: the reference server serves these,
/// not our copies, so a drift in ours would show as a difference.
const OVN_SCHEMAS: &str = "/usr/share/ovn";

/// Tests that pass on ovsdb-server and fail on `switchyard db`, each with its cause.
const KNOWN_DIFFERENCES: &[&str] = &[];

/// A child process killed (and reaped) on drop, so a failing test leaves nothing behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What ovsdbapp's venv does once the servers run: `ovn-nbctl init`, `ovn-sbctl init`, and
/// the real ovn-northd between NB and SB.
fn init_and_start_northd(dir: &Path, nb: &str, sb: &str) -> Killed {
    run_ok(
        Command::new("ovn-nbctl")
            .arg(format!("--db={nb}"))
            .arg("init"),
    );
    run_ok(
        Command::new("ovn-sbctl")
            .arg(format!("--db={sb}"))
            .arg("init"),
    );
    let northd = Command::new("ovn-northd")
        .arg(format!("--ovnnb-db={nb}"))
        .arg(format!("--ovnsb-db={sb}"))
        .arg(format!("--unixctl={}", dir.join("northd.ctl").display()))
        .arg(format!("--log-file={}", dir.join("northd.log").display()))
        .arg("--no-chdir")
        .arg("-vconsole:off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(northd)
}

struct Outcome {
    passed: BTreeSet<String>,
    failed: BTreeSet<String>,
    stderr: String,
}

/// Runs the suite against `nb` and `sb`; a hung run is killed and fails the test.
fn run_suite(what: &str, nb: &str, sb: &str) -> Outcome {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/ovsdbapp_suite.py");
    let child = Command::new(PYTHON)
        .arg(&script)
        .arg(nb)
        .arg(sb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(Duration::from_secs(150)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: signalling a child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("ovsdbapp's suite against {what} did not finish in 150 s");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with("passed ")),
        "ovsdbapp's suite against {what} did not run:\n{stdout}\n{stderr}"
    );
    let pick = |tag: &str| -> BTreeSet<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(tag))
            .map(str::to_owned)
            .collect()
    };
    Outcome {
        passed: pick("PASS "),
        failed: pick("FAIL "),
        stderr,
    }
}

fn ovsdb_server_outcome() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs: Vec<PathBuf> = Vec::new();
    for schema in ["ovn-nb.ovsschema", "ovn-sb.ovsschema"] {
        let db = dir.path().join(schema.replace("ovsschema", "db"));
        run_ok(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(Path::new(OVN_SCHEMAS).join(schema)),
        );
        dbs.push(db);
    }
    let sock = dir.path().join("db.sock");
    let server = Killed(
        Command::new("ovsdb-server")
            .args(&dbs)
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
            .arg(format!("--log-file={}", dir.path().join("log").display()))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&sock);
    let remote = format!("unix:{}", sock.display());
    let _northd = init_and_start_northd(dir.path(), &remote, &remote);
    let outcome = run_suite("ovsdb-server", &remote, &remote);
    drop(server);
    outcome
}

fn switchyard_outcome() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (nb, sb) = (dir.path().join("nb.sock"), dir.path().join("sb.sock"));
    let server = Killed(
        Command::new(env!("CARGO_BIN_EXE_switchyard-db"))
            .arg(format!("--nb-remote=punix:{}", nb.display()))
            .arg(format!("--sb-remote=punix:{}", sb.display()))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&nb);
    wait_for_socket(&sb);
    let (nb, sb) = (
        format!("unix:{}", nb.display()),
        format!("unix:{}", sb.display()),
    );
    let _northd = init_and_start_northd(dir.path(), &nb, &sb);
    let outcome = run_suite("switchyard db", &nb, &sb);
    drop(server);
    outcome
}

#[test]
fn ovsdbapp_ovn_functional_tests_pass_as_on_ovsdb_server() {
    for (tool, package) in [
        ("ovsdb-server", "openvswitch-common"),
        ("ovsdb-tool", "openvswitch-common"),
        ("ovn-nbctl", "ovn-common"),
        ("ovn-northd", "ovn-central"),
    ] {
        require_tool(tool, package);
    }
    let probe = Command::new(PYTHON)
        .args([
            "-c",
            "import ovsdbapp.tests.functional.schema.ovn_northbound.test_impl_idl, \
             ovsdbapp.tests.functional.schema.ovn_southbound.test_impl_idl",
        ])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{PYTHON} cannot load ovsdbapp's functional tests (apt-get install python3-ovsdbapp \
         python3-oslotest python3-testscenarios, as .ci/install-deps does):\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let real = ovsdb_server_outcome();
    let ours = switchyard_outcome();
    eprintln!(
        "ovsdbapp 2.1.0 OVN NB+SB functional tests: ovsdb-server passed {} failed {}; \
         switchyard db passed {} failed {}",
        real.passed.len(),
        real.failed.len(),
        ours.passed.len(),
        ours.failed.len()
    );
    // The suite really ran: ovsdbapp 2.1.0 has 282 NB and SB tests (with the load-balancer
    // scenarios), and the reference passes them.
    let total = real.passed.len() + real.failed.len();
    assert!(
        total >= 282,
        "only {total} tests ran on ovsdb-server:\n{}",
        real.stderr
    );
    assert_eq!(
        real.passed.len() + real.failed.len(),
        ours.passed.len() + ours.failed.len(),
        "the two runs saw different tests"
    );
    let only_real: BTreeSet<&str> = real
        .passed
        .difference(&ours.passed)
        .map(String::as_str)
        .collect();
    let known: BTreeSet<&str> = KNOWN_DIFFERENCES.iter().copied().collect();
    assert_eq!(
        only_real, known,
        "tests passing on ovsdb-server but not on switchyard db differ from the known list; \
         switchyard's failures:\n{}",
        ours.stderr
    );
    assert!(ours.passed.len() >= real.passed.len());
}
