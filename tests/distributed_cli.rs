//! CLI-level tests of distributed studies on a real PostgreSQL server (a throwaway cluster, or
//! `UNAS_TEST_POSTGRES_URL`; see search/tests/support): `unas search --store URL --workers
//! external` with two `unas worker` processes, `unas store copy` SQLite → PostgreSQL → SQLite,
//! and one clear error (exit code 2, no password) for a wrong URL, password or database.
//!
//! Quality comes from the synthetic TEST FIXTURE (not a quality metric) selected with the
//! `UNAS_TEST_SYNTHETIC_QUALITY` test hook.

#[path = "../search/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::Pg;
use unas_search::fixture::SyntheticQuality;
use unas_search::{open_store, Evaluators, Store, Study, StudyConfig, TrialStatus};

const STUDY_TOML: &str = r#"
name = "cli-dist"
space = "tiny"
trials = 24
seed = 3
window = 2

[controller]
kind = "aging"
population = 6
sample = 2

[latency]
model = "profile:a10g"
budget_ms = 1.75
latent = 16
batch = 2
text_len = 16
"#;

fn unas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_unas"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str]) -> Output {
    unas().args(args).output().expect("run unas")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn spawn_worker(url: &str) -> Child {
    unas()
        .args([
            "worker",
            "--store",
            url,
            "--study",
            "cli-dist",
            "--heartbeat",
            "0.2",
            "--grace",
            "10",
            "--poll",
            "0.05",
        ])
        .env("UNAS_TEST_SYNTHETIC_QUALITY", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unas worker")
}

#[test]
fn external_search_with_two_cli_workers_finishes_the_study() {
    let pg = Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, STUDY_TOML).unwrap();
    let out = dir.path().join("run");
    let controller = unas()
        .args(["search", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args([
            "--store",
            &pg.url,
            "--workers",
            "external",
            "--poll",
            "0.05",
            "--grace",
            "10",
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Workers need the study to exist: wait until the controller created it.
    let t0 = Instant::now();
    let mut store = loop {
        if let Ok(mut s) = open_store(&pg.url) {
            if s.study("cli-dist").unwrap().is_some() {
                break s;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the study never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let workers: Vec<Child> = (0..2).map(|_| spawn_worker(&pg.url)).collect();
    let o = controller.wait_with_output().unwrap();
    assert!(o.status.success(), "unas search: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains("report:"), "{}", text(&o.stdout));
    assert!(out.join("report.html").is_file());
    let mut evaluated_by = std::collections::HashSet::new();
    for w in workers {
        let o = w.wait_with_output().unwrap();
        let err = text(&o.stderr);
        assert!(o.status.success(), "unas worker: {err}");
        assert!(err.contains("TEST FIXTURE"), "{err}");
        evaluated_by.insert(err.lines().next().unwrap_or("").to_string());
    }
    let trials = store.trials("cli-dist").unwrap();
    assert_eq!(trials.len(), 24);
    assert!(trials.iter().all(|t| t.status.is_final()));
    for t in trials.iter().filter(|t| t.duplicate_of.is_none()) {
        assert_eq!(
            t.attempts, 1,
            "trial {} claimed {} times",
            t.number, t.attempts
        );
    }
    let leases = store.leases("cli-dist").unwrap();
    assert_eq!(
        leases.len(),
        trials.iter().filter(|t| t.duplicate_of.is_none()).count()
    );

    // Reports and export read the same store.
    let again = dir.path().join("again");
    let o = unas()
        .arg("report")
        .arg(&out)
        .args(["--store", &pg.url, "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "unas report: {}", text(&o.stderr));
    assert!(again.join("report.html").is_file());
    let o = unas()
        .arg("export")
        .arg(&out)
        .args(["--store", &pg.url, "--pick", "fastest", "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "unas export: {}", text(&o.stderr));
    assert!(again.join("unet-nas.toml").is_file());

    // A worker started after the end exits at once; `--once` with nothing pending too.
    let o = run(&[
        "worker", "--store", &pg.url, "--study", "cli-dist", "--once",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(&["store", "list", &pg.url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("cli-dist: 24 trials"),
        "{}",
        text(&o.stdout)
    );
}

fn password_of(url: &str) -> String {
    let userinfo = url.split_once("://").unwrap().1.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_string()
}

#[test]
fn bad_urls_give_one_clear_error_without_the_password() {
    let pg = Pg::new();
    let pw = password_of(&pg.url);
    let wrong = pg.url.replacen(&format!(":{pw}@"), ":wrong-secret@", 1);
    let missing = pg.url_for("no_such_db");
    let cases = [
        (wrong.as_str(), "password authentication failed"),
        (missing.as_str(), "database `no_such_db` does not exist"),
        (
            "postgres://unas:wrong-secret@127.0.0.1:1/db",
            "cannot connect",
        ),
        (
            "postgres://unas:wrong-secret@127.0.0.1:x/db",
            "invalid PostgreSQL URL",
        ),
    ];
    for (url, want) in cases {
        for args in [
            vec!["worker", "--store", url, "--study", "s"],
            vec!["store", "list", url],
            vec!["store", "copy", url, "/nonexistent-dir/x.sqlite"],
        ] {
            let o = run(&args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!err.contains(&pw) && !err.contains("wrong-secret"), "{err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
}

fn sqlite_study(dir: &Path) {
    let cfg: StudyConfig = toml::from_str(STUDY_TOML).unwrap();
    let mut study = Study::create(dir, cfg).unwrap();
    let latency = study.config().latency.build().unwrap();
    let q = SyntheticQuality::default();
    study
        .run(
            Evaluators {
                latency: latency.as_ref(),
                quality: &q,
            },
            &mut |_| {},
        )
        .unwrap();
}

fn same(a: &mut dyn Store, b: &mut dyn Store) {
    assert_eq!(a.study_names().unwrap(), b.study_names().unwrap());
    for name in a.study_names().unwrap() {
        assert_eq!(a.study(&name).unwrap(), b.study(&name).unwrap());
        assert_eq!(a.trials(&name).unwrap(), b.trials(&name).unwrap());
        assert_eq!(a.leases(&name).unwrap(), b.leases(&name).unwrap());
    }
}

#[test]
fn store_copy_sqlite_to_postgres_and_back_loses_nothing() {
    let pg = Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    sqlite_study(&run_dir);
    let o = run(&["store", "copy", run_dir.to_str().unwrap(), &pg.url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("(24 trials)"),
        "{}",
        text(&o.stdout)
    );
    assert!(!text(&o.stdout).contains(&password_of(&pg.url)));
    let back = dir.path().join("back.sqlite");
    let o = run(&["store", "copy", &pg.url, back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let mut a = open_store(run_dir.to_str().unwrap()).unwrap();
    let mut b = open_store(&pg.url).unwrap();
    let mut c = open_store(back.to_str().unwrap()).unwrap();
    same(a.as_mut(), b.as_mut());
    same(a.as_mut(), c.as_mut());
    let trials = c.trials("cli-dist").unwrap();
    assert_eq!(trials.len(), 24);
    assert!(trials.iter().any(|t| t.status == TrialStatus::Done));
    // A second copy into the same database is refused and changes nothing.
    let o = run(&["store", "copy", run_dir.to_str().unwrap(), &pg.url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("already holds a study named `cli-dist`"));
    same(a.as_mut(), b.as_mut());
}
