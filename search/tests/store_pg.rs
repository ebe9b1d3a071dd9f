//! The trial store against a real PostgreSQL server (see `support`), and the same behaviour
//! on SQLite: schema and migrations, claims (concurrent claimers never share a trial),
//! leases, stale trials, the retry limit, connection errors and `copy_store`.

mod support;

use std::collections::HashSet;

use support::Pg;
use unas_search::store::{
    copy_store, open_store, redact_url, Lease, Requeued, RungRecord, RungStore,
};
use unas_search::{PostgresStore, SqliteStore, Store, StudyRecord, TrialRecord, TrialStatus};

fn trial(study: &str, number: u64) -> TrialRecord {
    let origin = "{\"kind\":\"random\"}".to_string();
    let arch = unas_space::preset("tiny");
    TrialRecord {
        created_ms: 1_000 + number as i64,
        ..TrialRecord::pending(study, number, arch, origin, u64::MAX - number, None)
    }
}

fn study(name: &str) -> StudyRecord {
    StudyRecord {
        name: name.into(),
        settings: "{\"x\": 1}".into(),
        seed: u64::MAX - 1,
        created_ms: 42,
    }
}

/// Claims, heartbeats, guarded finishes, stale requeue and the retry limit, with explicit
/// clock values (no sleeping).
fn lease_lifecycle(s: &mut dyn Store) {
    assert_eq!(s.schema_version().unwrap(), 4);
    s.create_study(&study("a")).unwrap();
    for n in 0..4 {
        let mut t = trial("a", n);
        if n == 2 {
            t.duplicate_of = Some(0);
        }
        s.insert_trial(&t).unwrap();
    }
    // Lowest non-duplicate pending first; duplicates are never claimed.
    let t0 = s.claim_trial("a", "w1", 100).unwrap().unwrap();
    assert_eq!(
        (t0.number, t0.status, t0.attempts),
        (0, TrialStatus::Running, 1)
    );
    assert_eq!(t0.started_ms, Some(100));
    let t1 = s.claim_trial("a", "w2", 100).unwrap().unwrap();
    assert_eq!(t1.number, 1);
    let t3 = s.claim_trial("a", "w3", 100).unwrap().unwrap();
    assert_eq!(t3.number, 3);
    assert!(s.claim_trial("a", "w4", 100).unwrap().is_none());

    assert!(s.heartbeat("a", 0, "w1", 500).unwrap());
    assert!(!s.heartbeat("a", 0, "w2", 500).unwrap(), "not w2's trial");

    // Stale before 300: trials 1 and 3 (heartbeat 100) go back to pending, 0 stays.
    let r = s.requeue_stale("a", 300, 3, 600).unwrap();
    assert_eq!(
        r,
        Requeued {
            pending: 2,
            failed: 0
        }
    );
    // w2 lost its lease: its heartbeat and its result are refused.
    assert!(!s.heartbeat("a", 1, "w2", 610).unwrap());
    let mut late = t1.clone();
    late.status = TrialStatus::Done;
    late.quality = Some(9.0);
    late.finished_ms = Some(620);
    assert!(!s.finish_claimed(&late, "w2").unwrap());

    // w1 finishes trial 0 once; a second finish is refused.
    let mut done = t0.clone();
    done.status = TrialStatus::Done;
    done.quality = Some(1.25);
    done.latency_ms = Some(0.5);
    done.finished_ms = Some(700);
    assert!(s.finish_claimed(&done, "w1").unwrap());
    assert!(!s.finish_claimed(&done, "w1").unwrap());

    // Trial 1 is claimed again (attempt 2), lost again, claimed (attempt 3), lost: failed.
    let again = s.claim_trial("a", "w5", 800).unwrap().unwrap();
    assert_eq!((again.number, again.attempts), (1, 2));
    let r = s.requeue_stale("a", 900, 3, 1000).unwrap();
    assert_eq!(
        r,
        Requeued {
            pending: 1,
            failed: 0
        }
    );
    let third = s.claim_trial("a", "w6", 1100).unwrap().unwrap();
    assert_eq!((third.number, third.attempts), (1, 3));
    let r = s.requeue_stale("a", 1200, 3, 1300).unwrap();
    assert_eq!(
        r,
        Requeued {
            pending: 0,
            failed: 1
        }
    );

    let ts = s.trials("a").unwrap();
    assert_eq!(ts[0].status, TrialStatus::Done);
    assert_eq!(ts[0].quality, Some(1.25));
    assert_eq!(ts[1].status, TrialStatus::Failed);
    let reason = ts[1].error.clone().unwrap();
    assert!(
        reason.contains("w6") && reason.contains("3 attempts") && reason.contains("0.1 s"),
        "{reason}"
    );
    assert_eq!(ts[1].finished_ms, Some(1300));
    assert_eq!(ts[2].status, TrialStatus::Pending, "duplicates untouched");
    assert_eq!(ts[3].status, TrialStatus::Pending);

    // In-process runs (mark_running: no heartbeat) are never taken for stale.
    s.insert_trial(&trial("a", 4)).unwrap();
    s.mark_running("a", 4, 1400).unwrap();
    assert_eq!(
        s.requeue_stale("a", i64::MAX, 3, 1500).unwrap(),
        Requeued::default()
    );
    assert_eq!(s.requeue_running("a").unwrap(), 1);

    let leases = s.leases("a").unwrap();
    let numbers: Vec<u64> = leases.iter().map(|l| l.number).collect();
    assert_eq!(numbers, vec![0, 1, 3]);
    assert_eq!(leases[0].worker.as_deref(), Some("w1"));
    assert_eq!(leases[0].heartbeat_ms, Some(500));
    assert_eq!(leases[1].worker.as_deref(), Some("w6"));
}

/// Rung rows (successive halving): unique per (trial, rung), claims take the highest rung
/// first, heartbeats and guarded finishes as for trials, stale rungs requeued or failed.
fn rung_lifecycle(s: &mut dyn Store) {
    s.create_study(&study("r")).unwrap();
    for n in 0..3 {
        s.insert_trial(&trial("r", n)).unwrap();
    }
    for (n, k) in [(0, 1), (1, 1), (2, 2)] {
        s.insert_rung(&RungRecord::pending("r", n, k)).unwrap();
    }
    // The same (trial, rung) again: refused, so no rung is evaluated twice.
    assert!(s.insert_rung(&RungRecord::pending("r", 0, 1)).is_err());
    let a = s.claim_rung("r", "w1", 100).unwrap().unwrap();
    assert_eq!((a.number, a.rung, a.attempts), (2, 2, 1));
    assert_eq!(a.status, TrialStatus::Running);
    let b = s.claim_rung("r", "w2", 100).unwrap().unwrap();
    assert_eq!((b.number, b.rung), (0, 1));
    assert!(s.rung_heartbeat(&a, "w1", 400).unwrap());
    assert!(!s.rung_heartbeat(&a, "w2", 400).unwrap(), "not w2's rung");
    // w2 goes silent: its rung is requeued at 500 (stale before 300); w1's is kept.
    let r = s.requeue_stale_rungs("r", 300, 3, 500).unwrap();
    assert_eq!(
        r,
        Requeued {
            pending: 1,
            failed: 0
        }
    );
    let mut late = b.clone();
    late.status = TrialStatus::Done;
    late.score = Some(1.5);
    assert!(
        !s.finish_rung(&late, Some("w2")).unwrap(),
        "a lost lease writes nothing"
    );
    let mut done = a.clone();
    (done.status, done.score, done.quality) = (TrialStatus::Done, Some(0.25), Some("{}".into()));
    (done.quality_s, done.finished_ms) = (Some(2.0), Some(600));
    assert!(s.finish_rung(&done, Some("w1")).unwrap());
    let rungs = s.rungs("r").unwrap();
    let keys: Vec<(u64, u32, TrialStatus)> =
        rungs.iter().map(|r| (r.number, r.rung, r.status)).collect();
    assert_eq!(
        keys,
        vec![
            (0, 1, TrialStatus::Pending),
            (1, 1, TrialStatus::Pending),
            (2, 2, TrialStatus::Done)
        ]
    );
    assert_eq!(rungs[2].score, Some(0.25));
    assert_eq!(rungs[2].worker.as_deref(), Some("w1"));
    // An interrupted in-process run: running rungs back to pending.
    let c = s.claim_rung("r", "w3", 700).unwrap().unwrap();
    s.start_rung(&c, 700).unwrap();
    assert_eq!(s.requeue_running_rungs("r").unwrap(), 1);
}

#[test]
fn sqlite_rung_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    rung_lifecycle(&mut SqliteStore::open(&dir.path().join("s.sqlite")).unwrap());
}

#[test]
fn postgres_rung_lifecycle() {
    let pg = Pg::new();
    rung_lifecycle(&mut PostgresStore::connect(&pg.url).unwrap());
}

#[test]
fn sqlite_lease_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    lease_lifecycle(&mut s);
}

#[test]
fn postgres_lease_lifecycle_and_migrations() {
    let pg = Pg::new();
    let mut s = PostgresStore::connect(&pg.url).unwrap();
    lease_lifecycle(&mut s);
    // Reconnecting applies nothing again.
    drop(s);
    let mut s = PostgresStore::connect(&pg.url).unwrap();
    assert_eq!(s.schema_version().unwrap(), 4);
    assert_eq!(s.study_names().unwrap(), vec!["a".to_string()]);
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
    // The server clock is used for leases.
    let clock = s.clock_ms().unwrap();
    assert!(
        (clock - unas_search::store::now_ms()).abs() < 60_000,
        "{clock}"
    );
}

#[test]
fn postgres_concurrent_migrations_and_claims_never_share_a_trial() {
    let pg = Pg::new();
    // Eight processes' worth of connections migrate at once.
    let stores: Vec<PostgresStore> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| PostgresStore::connect(&pg.url).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut first = PostgresStore::connect(&pg.url).unwrap();
    first.create_study(&study("c")).unwrap();
    for n in 0..120 {
        first.insert_trial(&trial("c", n)).unwrap();
    }
    let claimed: Vec<Vec<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = stores
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                sc.spawn(move || {
                    let me = format!("w{i}");
                    let mut mine = Vec::new();
                    while let Some(t) = s.claim_trial("c", &me, 1).unwrap() {
                        assert_eq!(t.status, TrialStatus::Running);
                        mine.push(t.number);
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<u64> = claimed.iter().flatten().copied().collect();
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), 120, "every trial claimed once: {claimed:?}");
    assert_eq!(unique.len(), 120);
    assert!(first
        .trials("c")
        .unwrap()
        .iter()
        .all(|t| t.status == TrialStatus::Running && t.attempts == 1));
}

#[test]
fn postgres_connection_errors_are_clear_and_hide_the_password() {
    let pg = Pg::new();
    let password = pg
        .url
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(u, _)| u.split_once(':'))
        .map(|(_, p)| p.to_string())
        .unwrap();
    let wrong_pw = pg
        .url
        .replacen(&format!(":{password}@"), ":not-the-password@", 1);
    let missing_db = pg.url_for("no_such_database_here");
    let closed_port = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("postgres://unas:{password}@127.0.0.1:{port}/db")
    };
    let cases = [
        (wrong_pw.as_str(), "password authentication failed"),
        (missing_db.as_str(), "does not exist"),
        (closed_port.as_str(), "cannot connect"),
        (
            "postgres://unas:secret-pw@127.0.0.1:notaport/db",
            "invalid PostgreSQL URL",
        ),
        (
            "mysql://unas:secret-pw@127.0.0.1/db",
            "unknown store scheme",
        ),
    ];
    for (url, want) in cases {
        let e = open_store(url).err().unwrap().to_string();
        assert!(e.contains(want), "{url}: {e}");
        for secret in [password.as_str(), "not-the-password", "secret-pw"] {
            assert!(!e.contains(secret), "password printed: {e}");
        }
        assert!(e.contains(&redact_url(url)), "names the URL: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
}

fn assert_same(a: &mut dyn Store, b: &mut dyn Store, name: &str) {
    assert_eq!(a.study(name).unwrap(), b.study(name).unwrap());
    assert_eq!(a.trials(name).unwrap(), b.trials(name).unwrap());
    assert_eq!(a.leases(name).unwrap(), b.leases(name).unwrap());
    assert_eq!(a.rungs(name).unwrap(), b.rungs(name).unwrap());
}

#[test]
fn copy_sqlite_to_postgres_and_back_loses_nothing() {
    let pg = Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let mut src = SqliteStore::open(&dir.path().join("a.sqlite")).unwrap();
    for name in ["one", "two"] {
        src.create_study(&study(name)).unwrap();
        for n in 0..5 {
            let mut t = trial(name, n);
            t.duplicate_of = (n == 4).then_some(1);
            src.insert_trial(&t).unwrap();
        }
        let mut t = src.claim_trial(name, "host:1:abc", 77).unwrap().unwrap();
        t.status = TrialStatus::Done;
        t.quality = Some(0.1 + 0.2);
        t.latency_ms = Some(f64::MIN_POSITIVE);
        t.params = Some(u64::MAX);
        t.macs = Some(1 << 40);
        t.violation = Some(0.0);
        t.objectives = Some("{\"q\":1}".into());
        t.block_latency = Some("[]".into());
        t.latency_s = Some(1e-9);
        t.quality_s = Some(3.5);
        t.finished_ms = Some(99);
        assert!(src.finish_claimed(&t, "host:1:abc").unwrap());
        src.claim_trial(name, "host:2:def", 88).unwrap().unwrap();
        let mut f = trial(name, 2);
        f.status = TrialStatus::Failed;
        f.error = Some("synthetic failure with 'quotes' and ünïcode".into());
        src.finish_trial(&f).unwrap();
        let mut r = RungRecord::pending(name, 0, 1);
        (r.status, r.score, r.worker) = (TrialStatus::Done, Some(0.1 + 0.2), Some("w".into()));
        (r.quality, r.heartbeat_ms, r.finished_ms) = (Some("{\"q\":2}".into()), Some(5), Some(9));
        src.insert_rung(&r).unwrap();
        src.insert_rung(&RungRecord::pending(name, 3, 1)).unwrap();
    }
    let mut to = PostgresStore::connect(&pg.url).unwrap();
    let summary = copy_store(&mut src, &mut to, &[]).unwrap();
    assert_eq!(summary.studies, vec!["one".to_string(), "two".to_string()]);
    assert_eq!(summary.trials, 10);
    for name in ["one", "two"] {
        assert_same(&mut src, &mut to, name);
        assert!(to.leases(name).unwrap().contains(&Lease {
            number: 1,
            worker: Some("host:2:def".into()),
            heartbeat_ms: Some(88)
        }));
    }
    // Copying again is refused (nothing merged).
    let e = copy_store(&mut src, &mut to, &[])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("already holds a study named `one`"), "{e}");

    // And back into a new SQLite file.
    let mut back = SqliteStore::open(&dir.path().join("b.sqlite")).unwrap();
    let summary = copy_store(&mut to, &mut back, &["two".to_string()]).unwrap();
    assert_eq!(summary.trials, 5);
    assert_same(&mut src, &mut back, "two");
    assert_eq!(back.study_names().unwrap(), vec!["two".to_string()]);
}
