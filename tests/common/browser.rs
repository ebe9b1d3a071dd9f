//! Headless Chromium for tests, driven over WebDriver (W3C protocol) by Debian's
//! chromedriver (tools/test.sh installs `chromium` and `chromium-driver`), and small helpers
//! around it.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A child process killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `f` returns `Some`, failing after `secs` with `what`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Headless Chromium over WebDriver (W3C protocol, Debian's chromedriver).
pub struct Browser {
    _driver: Guard,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs chromedriver: apt-get install -y chromium chromium-driver (tools/test.sh does)");
        let driver = Guard(driver);
        let root = format!("http://127.0.0.1:{port}");
        wait_for(30, "chromedriver to start", || {
            ureq::get(&format!("{root}/status")).call().ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1300,1800",
                         format!("--user-data-dir={}", profile.path().display())],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let session: Value = ureq::post(&format!("{root}/session"))
            .send_json(caps)
            .unwrap_or_else(|e| panic!("starting a Chromium session: {e}"))
            .into_json()
            .unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            _driver: driver,
            _profile: profile,
            base: format!("{root}/session/{id}"),
        }
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let r: Value = ureq::post(&format!("{}/{path}", self.base))
            .send_json(body)
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .into_json()
            .unwrap();
        r["value"].clone()
    }

    /// Every `<img>` under `selector`: (alt, loaded and non-empty).
    pub fn images(&self, selector: &str) -> Vec<(String, bool)> {
        let v = self.eval(&format!(
            "return Array.from(document.querySelectorAll('{selector} img')).map(i => \
             [i.alt, i.complete && i.naturalWidth > 0 && i.naturalHeight > 0]);"
        ));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1] == true))
            .collect()
    }

    pub fn open(&self, url: &str) {
        self.post("url", json!({ "url": url }));
    }

    pub fn eval(&self, script: &str) -> Value {
        self.post("execute/sync", json!({ "script": script, "args": [] }))
    }

    pub fn text_of(&self, id: &str) -> String {
        self.eval(&format!(
            "const e = document.getElementById('{id}'); return e ? e.textContent : null;"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Console messages at level SEVERE (errors), and the page's own error list.
    pub fn errors(&self) -> Vec<String> {
        let log = self.post("se/log", json!({ "type": "browser" }));
        let mut out: Vec<String> = log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].to_string())
            .collect();
        if let Some(a) = self
            .eval("return window.__errors || ['no error list'];")
            .as_array()
        {
            out.extend(a.iter().map(|e| e.to_string()));
        }
        out
    }

    pub fn screenshot(&self) -> image::RgbImage {
        use base64::Engine;
        let r: Value = ureq::get(&format!("{}/screenshot", self.base))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["value"].as_str().unwrap())
            .unwrap();
        image::load_from_memory(&png).unwrap().to_rgb8()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
    }
}

/// A screenshot or image that is not (nearly) blank: some text and some colour.
pub fn assert_not_blank(img: &image::RgbImage) {
    let n = img.pixels().count();
    let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    let dark = img
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count();
    let colored = img
        .pixels()
        .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60)
        .count();
    assert!(white < n * 98 / 100, "screenshot is (nearly) blank");
    assert!(dark > 1000, "no text drawn ({dark} dark pixels)");
    assert!(colored > 300, "no coloured plot marks ({colored} pixels)");
}

/// A search drew a sample grid per front architecture (and reference) into `run`; report.html
/// shows each (images load in Chromium, none is blank) and so does the dashboard.
pub fn sample_grids_show_in_the_report_and_the_dashboard(run: &std::path::Path) {
    use std::io::BufRead;
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("samples/index.json")).unwrap())
            .unwrap();
    let grids = index["grids"].as_array().unwrap();
    let input = unas_reports::ReportInput::from_run_dir(run).unwrap();
    let front: Vec<u64> = input.results().front.iter().map(|t| t.number).collect();
    let references = grids.iter().filter(|g| g["number"].is_null()).count();
    assert_eq!(
        references,
        input.references.len(),
        "a grid per reference: {index}"
    );
    for n in &front {
        assert!(
            grids.iter().any(|g| g["number"].as_u64() == Some(*n)),
            "no grid for front trial #{n}: {index}"
        );
    }
    assert_eq!(index["prompts"].as_array().unwrap().len(), 8, "{index}");
    for g in grids {
        let png = std::fs::read(run.join("samples").join(g["file"].as_str().unwrap())).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let first = *img.get_pixel(img.width() / 2, img.height() / 2);
        assert!(
            img.pixels().filter(|p| **p != first).count() > 100,
            "grid {} is blank",
            g["file"]
        );
    }
    let b = Browser::start();
    let url = format!("file://{}", run.join("report.html").display());
    b.open(&url);
    let shown = b.images("#samples");
    assert_eq!(shown.len(), grids.len(), "{shown:?}");
    assert!(
        shown.iter().all(|(_, ok)| *ok),
        "an image did not load: {shown:?}"
    );
    // The dashboard of the same run shows them too.
    let mut dash = std::process::Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(["dashboard"])
        .arg(run)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(dash.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let guard = Guard(dash);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    b.open(&base);
    wait_for(60, "the dashboard's sample grids", || {
        let shown = b.images("#samples");
        (shown.len() == grids.len() && shown.iter().all(|(_, ok)| *ok)).then_some(())
    });
    let errors = b.errors();
    assert!(errors.is_empty(), "browser errors: {errors:?}");
    drop(guard);
}
