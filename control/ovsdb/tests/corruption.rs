//! Damage in the middle of a database log, as an operator meets it with the real
//! `switchyard-db`: the server refuses to start, saying where the bad record is and how many
//! intact records follow it, and leaves the file alone; `--repair` keeps the records before the
//! damage, sets the original aside unchanged and says what it dropped. A torn final record
//! alone (a crash mid-append) is still cut off without asking.

mod common;

use common::{
    address_set_names, db_command, free_port, insert_address_set, record_offsets, run_to_exit,
    DbProcess,
};

#[test]
fn mid_log_corruption_refuses_and_repair_keeps_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = DbProcess::start(dir.path(), port, "ptcp:0:127.0.0.1");
    for i in 0..10 {
        insert_address_set(port, &format!("t{i}"));
    }
    server.stop();

    // Record 1 is the snapshot, records 2.. the transactions: overwrite a few bytes of the
    // third insert (t2), the record number 4.
    let nb = dir.path().join("OVN_Northbound.db");
    let offsets = record_offsets(&nb);
    assert_eq!(offsets.len(), 11, "a snapshot and ten transactions");
    let mut bytes = std::fs::read(&nb).unwrap();
    let bad = offsets[3];
    bytes[bad + 40..bad + 44].copy_from_slice(b"XXXX");
    std::fs::write(&nb, &bytes).unwrap();

    let out = run_to_exit(&mut db_command(dir.path(), port, "ptcp:0:127.0.0.1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a server on a damaged log must refuse"
    );
    assert!(
        stderr.contains(&format!("record 4 at byte {bad} is invalid"))
            && stderr.contains("7 intact records follow it")
            && stderr.contains("--repair"),
        "the error says where, how much follows and what to do:\n{stderr}"
    );
    assert_eq!(
        std::fs::read(&nb).unwrap(),
        bytes,
        "refusing must not touch the file"
    );

    let mut repair = db_command(dir.path(), port, "ptcp:0:127.0.0.1");
    let out = run_to_exit(repair.arg("--repair"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("kept the 3 records before it and dropped 8 records")
            && stdout.contains("OVN_Southbound.db: intact"),
        "the repair says what it dropped:\n{stdout}"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("OVN_Northbound.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "one copy of the original: {aside:?}");
    assert!(stdout.contains(&aside[0].display().to_string()), "{stdout}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        bytes,
        "the original is kept unchanged"
    );

    let _server = DbProcess::start(dir.path(), port, "ptcp:0:127.0.0.1");
    assert_eq!(
        address_set_names(port),
        ["t0", "t1"].map(String::from).into()
    );
}

#[test]
fn torn_final_record_is_cut_and_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = DbProcess::start(dir.path(), port, "ptcp:0:127.0.0.1");
    for i in 0..3 {
        insert_address_set(port, &format!("t{i}"));
    }
    server.stop();
    // Cut the last record short, as a crash in the middle of its append leaves it: nothing in
    // it was acknowledged, so the server cuts it off by itself.
    let nb = dir.path().join("OVN_Northbound.db");
    let last = *record_offsets(&nb).last().unwrap();
    let len = std::fs::metadata(&nb).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&nb).unwrap();
    f.set_len((last as u64 + len) / 2).unwrap();
    drop(f);

    let _server = DbProcess::start(dir.path(), port, "ptcp:0:127.0.0.1");
    assert_eq!(
        address_set_names(port),
        ["t0", "t1"].map(String::from).into()
    );
    assert_eq!(std::fs::metadata(&nb).unwrap().len(), last as u64);
}
