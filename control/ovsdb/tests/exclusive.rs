//! One server per data directory and per socket, driving the real `switchyard-db` binary: a
//! second server on the same `--data-dir` or `punix:` path refuses to start, names the first
//! one's pid and leaves no file behind, while the first keeps serving and loses nothing; a
//! socket nobody listens on any more (the holder was killed) is taken over.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{
    address_set_names, db_command, insert_address_set, run_to_exit, unix_call, DbProcess,
};
use serde_json::json;

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn second_server_on_one_data_dir_refuses_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let first = DbProcess::start(dir.path(), 0, "ptcp:0:127.0.0.1");
    let port = first.nb_port();
    insert_address_set(port, "before");
    let files = listing(dir.path());

    let out = run_to_exit(&mut db_command(dir.path(), 0, "ptcp:0:127.0.0.1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second server must refuse");
    assert!(
        stderr.contains("OVN_Northbound.db: the database is in use by")
            && stderr.contains(&format!("pid {}", first.pid())),
        "the refusal names the file and the holder:\n{stderr}"
    );
    assert_eq!(listing(dir.path()), files, "the refused server left files");

    // The first one serves on, and everything committed through it survives a restart.
    insert_address_set(port, "after");
    drop(first);
    let again = DbProcess::start(dir.path(), 0, "ptcp:0:127.0.0.1");
    assert_eq!(
        address_set_names(again.nb_port()),
        ["after", "before"].map(String::from).into()
    );
}

#[test]
fn live_punix_socket_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sb.sock");
    let sb = format!("punix:{}", sock.display());
    let first = DbProcess::start(&dir.path().join("a"), 0, &sb);

    let second_dir = dir.path().join("b");
    let out = run_to_exit(&mut db_command(&second_dir, 0, &sb));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second server must refuse");
    assert!(
        stderr.contains("is listening on this socket; refusing to take it over")
            && stderr.contains(&format!("pid {}", first.pid())),
        "the refusal names the socket's holder:\n{stderr}"
    );
    assert!(
        !second_dir.exists(),
        "a server that could not bind created its data directory"
    );
    // The first server still answers on its socket.
    let r = unix_call(&sock, "list_dbs", json!([]));
    assert!(
        r["result"]
            .as_array()
            .unwrap()
            .contains(&json!("OVN_Southbound")),
        "{r}"
    );
    first.stop();
    assert!(!sock.exists(), "a stopped server removes its socket");
}

#[test]
fn stale_punix_socket_is_taken_over_and_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sb.sock");
    // A server killed with SIGKILL leaves its socket file with nobody listening.
    let mut killed = DbProcess::start(dir.path(), 0, &format!("punix:{}", sock.display()));
    killed.sigkill();
    assert!(sock.exists());
    let _server = DbProcess::start(dir.path(), 0, &format!("punix:{}", sock.display()));
    let r = unix_call(&sock, "list_dbs", json!([]));
    assert!(
        r["result"]
            .as_array()
            .unwrap()
            .contains(&json!("OVN_Southbound")),
        "{r}"
    );

    // A path that is not a socket is never removed.
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "keep").unwrap();
    let out = run_to_exit(&mut db_command(
        &dir.path().join("c"),
        0,
        &format!("punix:{}", plain.display()),
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep");
}
