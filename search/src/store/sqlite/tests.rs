//! Tests of the SQLite store: placeholders, migrations, round trips.

use super::*;
use crate::store::{StudyRecord, TrialRecord, TrialStatus};

fn trial(study: &str, number: u64) -> TrialRecord {
    let origin = "{\"kind\":\"random\"}".to_string();
    TrialRecord::pending(
        study,
        number,
        unas_space::preset("tiny"),
        origin,
        u64::MAX - 3,
        None,
    )
}

#[test]
fn placeholders_are_rewritten() {
    assert_eq!(
        sqlite_placeholders("a = $1 AND b = $12, '$x'"),
        "a = ?1 AND b = ?12, '$x'"
    );
}

#[test]
fn migrations_are_idempotent_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    {
        let mut s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), 4);
        s.migrate(i64::MAX).unwrap();
        s.migrate(i64::MAX).unwrap();
        assert_eq!(s.schema_version().unwrap(), 4);
    }
    // Reopening applies nothing again; one row per version.
    let mut s = SqliteStore::open(&path).unwrap();
    let n: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(s.schema_version().unwrap(), 4);
}

#[test]
fn upgrades_from_an_older_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let conn = Connection::open(&path).unwrap();
    let mut old = SqliteStore {
        conn,
        location: "old".into(),
    };
    old.migrate(1).unwrap();
    assert_eq!(old.schema_version().unwrap(), 1);
    drop(old);
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 4);
    let idx: i64 = s
        .conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'trials_by_hash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(idx, 1);
    // Version 4 added the successive-halving rungs.
    let rungs: i64 = s
        .conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'rungs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rungs, 1);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let e = SqliteStore::open(&path).err().unwrap().to_string();
    assert!(
        e.contains("schema version 99") && e.contains("s.sqlite"),
        "{e}"
    );
}

#[test]
fn trial_round_trip_and_requeue() {
    let mut s = SqliteStore::in_memory().unwrap();
    s.create_study(&StudyRecord {
        name: "a".into(),
        settings: "{}".into(),
        seed: u64::MAX,
        created_ms: 1,
    })
    .unwrap();
    assert_eq!(s.study("a").unwrap().unwrap().seed, u64::MAX);
    assert!(s
        .create_study(&StudyRecord {
            name: "a".into(),
            settings: "{}".into(),
            seed: 0,
            created_ms: 1,
        })
        .is_err());
    let t0 = trial("a", 0);
    s.insert_trial(&t0).unwrap();
    s.insert_trial(&trial("a", 1)).unwrap();
    assert!(s.insert_trial(&trial("a", 1)).is_err(), "duplicate number");
    s.mark_running("a", 0, 5).unwrap();
    s.mark_running("a", 1, 5).unwrap();
    let mut done = t0.clone();
    done.status = TrialStatus::Done;
    done.quality = Some(1.5);
    done.latency_ms = Some(2.5);
    done.params = Some(123);
    done.finished_ms = Some(9);
    done.started_ms = Some(5);
    s.finish_trial(&done).unwrap();
    assert_eq!(s.requeue_running("a").unwrap(), 1);
    let ts = s.trials("a").unwrap();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0].status, TrialStatus::Done);
    assert_eq!(ts[0].quality, Some(1.5));
    assert_eq!(ts[0].attempts, 1);
    assert_eq!(ts[0].eval_seed, u64::MAX - 3);
    assert_eq!(ts[0].arch, t0.arch);
    assert_eq!(ts[1].status, TrialStatus::Pending);
    assert_eq!(s.study_names().unwrap(), vec!["a".to_string()]);
}
