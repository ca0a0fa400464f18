//! Atomic hot reload (issue 2, point 5): edits are picked up by the file watcher, SIGHUP and
//! `POST /reload`; a broken edit never replaces good data; no query ever sees an error or a
//! mixture during reloads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::dns::{Server, copy_fixture, write_atomically};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

fn www_a(s: &Server) -> Option<String> {
    let m = s.query("www.example.test.", RecordType::A);
    match m.answers.first().map(|r| &r.data) {
        Some(RData::A(a)) => Some(a.to_string()),
        _ => None,
    }
}

fn edit_www(zone: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(zone).unwrap();
    assert!(text.contains(from));
    write_atomically(zone, &text.replace(from, to));
}

#[test]
fn file_edit_is_served_without_restart() {
    let dir = copy_fixture("dns");
    let zone = dir.path().join("example.test.zone");
    let s = Server::with_zones(dir.path()).start();
    assert_eq!(www_a(&s).as_deref(), Some("192.0.2.1"));
    let edited = Instant::now();
    edit_www(
        &zone,
        "www         IN A    192.0.2.1",
        "www         IN A    192.0.2.111",
    );
    s.wait_for("the edit to be served", || {
        (www_a(&s).as_deref() == Some("192.0.2.111")).then_some(())
    });
    // Reported, not asserted: timing belongs to measurements, not to pass/fail.
    eprintln!(
        "edit served {} ms after the write",
        edited.elapsed().as_millis()
    );
}

#[test]
fn include_file_edit_is_picked_up() {
    let dir = copy_fixture("dns");
    let s = Server::with_zones(dir.path()).start();
    let inc = dir.path().join("big.inc");
    let text = std::fs::read_to_string(&inc).unwrap();
    write_atomically(&inc, &format!("{text}big IN TXT \"one more\"\n"));
    s.wait_for("the included edit", || {
        let m = common::dns::tcp_exchange(
            s.dns,
            &[common::dns::query_message(
                "big.example.test.",
                RecordType::TXT,
                false,
                None,
            )],
        );
        (m[0].answers.len() == 41).then_some(())
    });
}

#[test]
fn broken_edit_is_refused_and_old_data_keeps_serving_until_fixed() {
    let dir = copy_fixture("dns");
    let zone = dir.path().join("example.test.zone");
    let good = std::fs::read_to_string(&zone).unwrap();
    let s = Server::with_zones(dir.path()).start();

    // A CNAME beside other data on line 8 and an address that does not parse.
    let broken = good
        .replace(
            "www         IN A    192.0.2.1",
            "www         IN A    192.0.2.222\nwww IN CNAME alias",
        )
        .replace(
            "mx1         IN A    192.0.2.25",
            "mx1         IN A    192.0.2.256",
        );
    write_atomically(&zone, &broken);
    let error = s.wait_for("the failed reload in /status", || {
        let (_, body) = s.admin("GET", "/status");
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        let last = status.get("last_reload")?;
        (last["ok"] == false).then(|| last["error"].as_str().unwrap_or_default().to_string())
    });
    assert!(
        error.contains("example.test.zone:"),
        "error names the file: {error}"
    );
    assert_eq!(
        www_a(&s).as_deref(),
        Some("192.0.2.1"),
        "old data still served"
    );
    let (_, metrics) = s.admin("GET", "/metrics");
    assert!(
        metrics.contains("meridian_reload_failures_total 1"),
        "{metrics}"
    );
    assert!(s.log().contains("reload refused"), "{}", s.log());

    // `POST /reload` reports the same refusal.
    let (code, body) = s.admin("POST", "/reload");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("example.test.zone:"), "{body}");

    // Fix it: the new data is served.
    write_atomically(&zone, &good.replace("192.0.2.1\n", "192.0.2.123\n"));
    s.wait_for("recovery after the fix", || {
        (www_a(&s).as_deref() == Some("192.0.2.123")).then_some(())
    });
    let (_, body) = s.admin("GET", "/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["last_reload"]["ok"], true);
}

#[test]
fn sighup_and_admin_post_reload() {
    let dir = copy_fixture("dns");
    let zone = dir.path().join("example.test.zone");
    let s = Server::with_zones(dir.path()).start();
    // Both triggers run the same reload; each one must pick up a change on its own, so
    // stop the watcher from racing us by checking the generation each trigger reports.
    let (code, body) = s.admin("POST", "/reload");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("generation"), "{body}");
    edit_www(&zone, "192.0.2.1\n", "192.0.2.77\n");
    std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    s.wait_for("the reloaded data", || {
        (www_a(&s).as_deref() == Some("192.0.2.77")).then_some(())
    });
    assert!(
        s.log().contains("SIGHUP") || s.log().contains("file change"),
        "{}",
        s.log()
    );
}

#[test]
fn queries_during_100_reloads_see_only_old_or_new_data() {
    let dir = copy_fixture("dns");
    let zone = dir.path().join("example.test.zone");
    let old = std::fs::read_to_string(&zone).unwrap();
    let new = old.replace("192.0.2.1\n", "192.0.2.2\n");
    let s = Arc::new(Server::with_zones(dir.path()).start());
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let m = s.query("www.example.test.", RecordType::A);
                assert_eq!(m.metadata.response_code, ResponseCode::NoError);
                let addrs: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
                assert!(
                    addrs == ["192.0.2.1"] || addrs == ["192.0.2.2"],
                    "unexpected answer {addrs:?}"
                );
                let m = s.query("mx1.example.test.", RecordType::A);
                assert_eq!(m.answers.len(), 1, "other names keep answering");
                seen += 1;
            }
            seen
        })
    };
    for i in 0..100 {
        write_atomically(&zone, if i % 2 == 0 { &new } else { &old });
        let (code, body) = s.admin("POST", "/reload");
        assert_eq!(code, 200, "{body}");
    }
    stop.store(true, Ordering::Relaxed);
    let queries = checker.join().expect("no query saw an error or mixed data");
    assert!(queries > 0);
    eprintln!("{queries} query pairs answered during 100 reloads");
}

fn reloads(s: &Server) -> u64 {
    let (_, metrics) = s.admin("GET", "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("meridian_reloads_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("meridian_reloads_total in /metrics")
}

/// Reading the zone files (a reload does, and so do operators and backups) is not a change:
/// after an edit's reload the watcher stays quiet instead of reloading on the access events
/// of its own reads.
#[test]
fn reads_of_the_zone_files_cause_no_reload() {
    let dir = copy_fixture("dns");
    let zone = dir.path().join("example.test.zone");
    let s = Server::with_zones(dir.path()).start();
    let before = reloads(&s);
    edit_www(&zone, "192.0.2.1\n", "192.0.2.88\n");
    s.wait_for("the edit to be served", || {
        (www_a(&s).as_deref() == Some("192.0.2.88")).then_some(())
    });
    let after_edit = reloads(&s);
    assert!(after_edit > before, "the edit was a reload");

    // Read every file repeatedly for a while (several debounce windows, 150 ms each).
    let window = Instant::now();
    while window.elapsed() < std::time::Duration::from_millis(1500) {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let _ = std::fs::read(entry.unwrap().path());
        }
        assert_eq!(
            reloads(&s),
            after_edit,
            "reads of the zone files caused a reload"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Edits that never stop are still served (issue 10): a zone rewritten every 100 ms for
/// 10 s is reloaded while the edits go on (the watcher fires at most about a second after
/// the first change not yet reloaded, instead of waiting for a quiet moment that never
/// comes), and the last edit is served once they stop.
#[test]
fn edits_every_100_ms_are_served_while_they_continue() {
    let dir = copy_fixture("dns");
    let zone = dir.path().join("example.test.zone");
    let original = std::fs::read_to_string(&zone).unwrap();
    let s = Server::with_zones(dir.path()).start();
    let address = |i: u32| format!("198.51.{}.{}", i / 256, i % 256);
    let edits = 100;
    let mut served_while_editing = std::collections::BTreeSet::new();
    for i in 1..=edits {
        // Asked before each edit but the first: every answer counted here came while
        // another edit was still to follow.
        if i > 1
            && let Some(a) = www_a(&s).filter(|a| a != "192.0.2.1")
        {
            served_while_editing.insert(a);
        }
        write_atomically(
            &zone,
            &original.replace("192.0.2.1\n", &format!("{}\n", address(i))),
        );
        // The editing cadence itself, not a wait for the server: a tool rewriting the zone
        // ten times a second.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let last = address(edits);
    s.wait_for("the last edit to be served", || {
        (www_a(&s).as_deref() == Some(last.as_str())).then_some(())
    });
    eprintln!(
        "{} of {edits} edits served while the edits went on, {} reloads",
        served_while_editing.len(),
        reloads(&s)
    );
    assert!(
        served_while_editing.len() >= 5,
        "only {served_while_editing:?} served while edits continued; log:\n{}",
        s.log()
    );
}
