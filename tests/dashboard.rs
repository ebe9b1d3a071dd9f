//! `unas dashboard` in a real browser: a study runs (synthetic TEST FIXTURE quality, not a
//! quality metric, via the `UNAS_TEST_SYNTHETIC_QUALITY` hook), the dashboard serves it on a
//! free loopback port, and headless Chromium (driven over WebDriver by Debian's chromedriver;
//! tools/test.sh installs both) loads the page, sees the trial count, and sees it and the front
//! change as more trials finish — without a reload. Also: the same against a PostgreSQL
//! study with two workers, and one clear error (exit 2) each for a bad store, an unknown study
//! and a port in use.

#[path = "common/browser.rs"]
mod browser;
#[path = "../search/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};
use unas_search::{open_store, open_store_read_only};

use browser::{assert_not_blank, wait_for, Browser, Guard};

fn unas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_unas"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn study_toml(name: &str, trials: usize) -> String {
    format!(
        r#"
name = "{name}"
space = "tiny"
trials = {trials}
seed = 5
jobs = 1
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
"#
    )
}

/// Starts `unas dashboard ARGS… --bind 127.0.0.1:0` and returns it with its URL (read from
/// its first line of output).
fn dashboard(args: &[&str]) -> (Guard, String) {
    let mut child = unas()
        .arg("dashboard")
        .args(args)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn unas dashboard");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in `{line}`"))
        .trim_end_matches('/')
        .to_string();
    (Guard(child), url)
}

fn get(url: &str) -> Value {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_json()
        .unwrap()
}

/// The page shows `api`'s trial count and front; its plots are drawn.
fn page_matches(b: &Browser, api: &Value) -> bool {
    let front: Vec<String> = api["front"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let shown = |id: &str| b.text_of(id).parse::<u64>().ok();
    let front_attr = b.eval("return document.getElementById('pareto').dataset.front;");
    shown("n-total") == api["total"].as_u64()
        && shown("n-done") == api["counts"]["done"].as_u64()
        && front_attr.as_str() == Some(front.join(",").as_str())
}

/// Drives the page while `study` finishes: it first shows the trials done so far, then — with
/// no reload — the final count and front; a click on a Pareto point shows that trial.
fn watch_study_finish(b: &Browser, url: &str, mut study: Child) {
    b.open(url);
    b.eval("window.__marker = 'no reload'; return 1;");
    // The page catches up with the API while trials are still running.
    // The page shows the trials done so far (the study moves on while it polls).
    let first_done: u64 = wait_for(60, "the page to show the study", || {
        let total: u64 = b.text_of("n-total").parse().ok()?;
        (total > 0).then(|| b.text_of("n-done").parse().ok())?
    });
    let first_version = b.eval("return document.getElementById('pareto').dataset.version;");
    let status = wait_for(300, "the study to finish", || study.try_wait().unwrap());
    let mut err = String::new();
    if let Some(mut e) = study.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "study failed: {err}");
    let last = get(&format!("{url}/api/study"));
    assert!(
        last["counts"]["done"].as_u64() > Some(first_done),
        "no trial finished while the page was open: {first_done} done at first, then {last}"
    );
    wait_for(30, "the page to show the final study", || {
        page_matches(b, &last).then_some(())
    });
    assert_ne!(
        b.eval("return document.getElementById('pareto').dataset.version;"),
        first_version,
        "the plots were not redrawn"
    );
    assert_eq!(b.eval("return window.__marker;"), json!("no reload"));
    // Every trial is in the table; a click on a front point shows that trial.
    let rows = b.eval("return document.querySelectorAll('#trials tbody tr').length;");
    assert_eq!(rows, last["total"]);
    let knee = last["front"][0].as_u64().expect("a front");
    let shown = b.eval(&format!(
        "const c = document.querySelector('#pareto circle.hit[data-trial=\"{knee}\"]'); \
         if (!c) return null; \
         c.dispatchEvent(new MouseEvent('click', {{ bubbles: true }})); \
         return document.getElementById('detail').textContent;"
    ));
    let shown = shown.as_str().expect("the front point is clickable");
    assert!(shown.contains(&format!("Trial #{knee}")), "{shown}");
    assert!(shown.contains("on the front"), "{shown}");
    let errors = b.errors();
    assert!(errors.is_empty(), "browser errors: {errors:?}");
    assert_not_blank(&b.screenshot());
}

fn start_search(file: &Path, out: &Path, extra: &[&str], delay_ms: &str) -> Child {
    unas()
        .args(["search", "--config"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["--quiet"])
        .args(extra)
        .env("UNAS_TEST_SYNTHETIC_QUALITY", delay_ms)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn dashboard_follows_a_running_sqlite_study_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, study_toml("dash", 30)).unwrap();
    let out = dir.path().join("run");
    let study = start_search(&file, &out, &[], "400");
    // The dashboard starts once the store has a finished trial.
    wait_for(120, "the study's first trial", || {
        let mut s = open_store_read_only(out.join("study.sqlite").to_str()?).ok()?;
        let done = s.trials("dash").ok()?.iter().any(|t| t.status.is_final());
        done.then_some(())
    });
    let (_dash, url) = dashboard(&[out.to_str().unwrap()]);
    let api = get(&format!("{url}/api/trials?since=0"));
    assert!(api["cursor"].as_i64().unwrap() > 0, "{api}");
    let b = Browser::start();
    watch_study_finish(&b, &url, study);
    // The JSON endpoints: every trial with its blocks; `since` past the cursor gives only the
    // rows changed at that instant.
    let all = get(&format!("{url}/api/trials"));
    assert_eq!(all["trials"].as_array().unwrap().len(), 30);
    assert!(
        all["trials"][0]["blocks"]["mid"].is_array(),
        "{}",
        all["trials"][0]
    );
    let cursor = all["cursor"].as_i64().unwrap();
    let late = get(&format!("{url}/api/trials?since={}", cursor + 1));
    assert!(late["trials"].as_array().unwrap().is_empty(), "{late}");
}

#[test]
fn dashboard_follows_a_postgres_study_with_two_workers_in_chromium() {
    let pg = support::Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, study_toml("dash-pg", 24)).unwrap();
    let out = dir.path().join("run");
    let controller = start_search(
        &file,
        &out,
        &[
            "--store",
            &pg.url,
            "--workers",
            "external",
            "--poll",
            "0.05",
        ],
        "0",
    );
    wait_for(120, "the study to appear", || {
        let mut s = open_store(&pg.url).ok()?;
        s.study("dash-pg").ok()?.map(|_| ())
    });
    let worker = || {
        let c = unas()
            .args(["worker", "--store", &pg.url, "--study", "dash-pg"])
            .args(["--heartbeat", "0.2", "--poll", "0.05"])
            .env("UNAS_TEST_SYNTHETIC_QUALITY", "1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Guard(c)
    };
    let _workers = [worker(), worker()];
    wait_for(120, "the first finished trial", || {
        let mut s = open_store(&pg.url).ok()?;
        let done = s
            .trials("dash-pg")
            .ok()?
            .iter()
            .any(|t| t.status.is_final());
        done.then_some(())
    });
    let (_dash, url) = dashboard(&[&pg.url, "--study", "dash-pg"]);
    let api = get(&format!("{url}/api/study"));
    // No password in what the page is given.
    assert!(!api.to_string().contains("unas-test-password"), "{api}");
    let page = ureq::get(&format!("{url}/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!page.contains("http://") || !page.contains("src=\"http"));
    let b = Browser::start();
    // Running trials show their worker while the study runs.
    b.open(&url);
    wait_for(60, "a running trial with its worker", || {
        let r = b.eval("return document.getElementById('running').textContent;");
        r.as_str().filter(|s| s.contains(':')).map(|_| ())
    });
    watch_study_finish(&b, &url, controller);
}

fn run(args: &[&str]) -> Output {
    unas().args(args).output().unwrap()
}

#[test]
fn dashboard_errors_are_clear_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let o = run(&["dashboard", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no such run directory"),
        "{}",
        text(&o.stderr)
    );

    let o = run(&[
        "dashboard",
        "postgres://someone:secret-pw@127.0.0.1:1/nodb?connect_timeout=2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("cannot connect") && !err.contains("secret-pw"),
        "{err}"
    );

    // A finished study, then an unknown study name and a port in use.
    let file = dir.path().join("study.toml");
    std::fs::write(&file, study_toml("dash-err", 4)).unwrap();
    let out = dir.path().join("run");
    let s = start_search(&file, &out, &[], "0")
        .wait_with_output()
        .unwrap();
    assert!(s.status.success(), "{}", text(&s.stderr));
    let before = std::fs::read(out.join("study.sqlite")).unwrap();
    let run_dir = out.to_str().unwrap();
    let o = run(&["dashboard", run_dir, "--study", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no study named `nope`"),
        "{}",
        text(&o.stderr)
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = run(&["dashboard", run_dir, "--bind", &addr]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&o.stderr)
    );

    // Another address than loopback only when asked, with a warning.
    let mut open = unas()
        .args(["dashboard", run_dir, "--bind", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(open.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("http://0.0.0.0:"), "{line}");
    open.kill().unwrap();
    let o = open.wait_with_output().unwrap();
    assert!(
        text(&o.stderr).contains("not a loopback address"),
        "{}",
        text(&o.stderr)
    );

    // Serving reads, never writes: the store file is unchanged after the endpoints are read.
    let (dash, url) = dashboard(&[run_dir]);
    for ep in ["/api/study", "/api/trials?since=0", "/api/plots"] {
        get(&format!("{url}{ep}"));
    }
    drop(dash);
    assert!(
        std::fs::read(out.join("study.sqlite")).unwrap() == before,
        "the store changed"
    );
}

/// README's quick start (its study file, with 8 trials and the A10G roofline instead of
/// profiling this machine, so the debug build finishes quickly): report.html shows a sample
/// grid per front architecture and for the reference, the images load in Chromium and none
/// is blank; the dashboard shows them too.
#[test]
fn the_quick_starts_report_shows_a_sample_grid_per_front_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let study = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml"),
    )
    .unwrap()
    .replace("trials = 40", "trials = 8")
    .replace("model = \"lut:auto\"", "model = \"profile:a10g\"");
    assert!(study.contains("trials = 8") && study.contains("profile:a10g"));
    let file = dir.path().join("quickstart.toml");
    std::fs::write(&file, study).unwrap();
    let out = dir.path().join("run");
    // From the repository root, where the study's `prepared = "configs/data"` is.
    let o = unas()
        .args(["search", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .env("UNAS_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("samples: "), "{}", text(&o.stderr));
    browser::sample_grids_show_in_the_report_and_the_dashboard(&out);
}
