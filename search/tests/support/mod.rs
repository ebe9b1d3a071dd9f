//! A real PostgreSQL database for tests.
//!
//! With `UNAS_TEST_POSTGRES_URL` set (CI: `.ci/run` starts the Debian cluster and creates a
//! role allowed to create databases), each test gets a fresh database on that server.
//! Otherwise the test starts its own throwaway cluster (`initdb` + `pg_ctl` from the
//! `postgresql` package, run as the `postgres` user when we are root) on a random loopback
//! port, and stops it when done. Without either, the test fails with a message saying what
//! to install: PostgreSQL tests never pass silently.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable naming an existing server (a URL whose role may `CREATE DATABASE`).
pub const URL_ENV: &str = "UNAS_TEST_POSTGRES_URL";

/// A fresh database; dropped (and the throwaway cluster stopped) on drop.
pub struct Pg {
    /// `postgres://user:password@127.0.0.1:port/database` of the fresh database.
    pub url: String,
    admin_url: String,
    dbname: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Replaces the database of a URL.
pub fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[rest_start..].find('/') {
        Some(i) => &base[..rest_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("UNAS_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|v| v.1)
}

fn run(cluster_as_postgres: bool, program: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = if cluster_as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}\n{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts a throwaway cluster; with `tls = Some((certificate PEM, key PEM))` it serves TLS with
/// that certificate (plain connections stay allowed).
fn start_cluster(tls: Option<(&str, &str)>) -> Result<(String, Cluster), String> {
    let bin = pg_bin().ok_or_else(|| {
        format!(
            "PostgreSQL tests need a server: set {URL_ENV}=postgres://user:password@host:port/db \
             (a role that may CREATE DATABASE), or install the Debian package `postgresql` \
             (initdb, pg_ctl under /usr/lib/postgresql/*/bin) so the tests start their own"
        )
    })?;
    // SAFETY: geteuid has no preconditions.
    let as_postgres = unsafe { libc::geteuid() } == 0;
    let dir = std::env::temp_dir().join(format!(
        "unas-pg-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let password = format!("pw-{:x}", std::process::id() as u64 * 0x9E37_79B9 + 17);
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n")).map_err(|e| e.to_string())?;
    let mut ssl = String::new();
    if let Some((cert, key)) = tls {
        use std::os::unix::fs::PermissionsExt;
        let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert_file, cert).map_err(|e| e.to_string())?;
        std::fs::write(&key_file, key).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        ssl = format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert_file.display(),
            key_file.display()
        );
    }
    if as_postgres {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "chown postgres {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let data = dir.join("data");
    let d = |p: &Path| p.to_str().unwrap().to_string();
    run(
        as_postgres,
        &bin.join("initdb"),
        &[
            "-D",
            &d(&data),
            "-U",
            "unas",
            "--pwfile",
            &d(&pwfile),
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        ],
    )?;
    let cluster = Cluster {
        dir: dir.clone(),
        bin: bin.clone(),
        as_postgres,
    };
    let port = free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c max_connections=100{ssl}",
        d(&dir)
    );
    run(
        as_postgres,
        &bin.join("pg_ctl"),
        &[
            "-D",
            &d(&data),
            "-o",
            &opts,
            "-l",
            &d(&dir.join("log")),
            "-w",
            "-t",
            "60",
            "start",
        ],
    )?;
    Ok((
        format!("postgres://unas:{password}@127.0.0.1:{port}/postgres"),
        cluster,
    ))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pg {
    /// A fresh database on the configured server or on a throwaway cluster; panics with a
    /// clear message when neither is possible.
    pub fn new() -> Self {
        let (admin_url, cluster) = match std::env::var(URL_ENV) {
            Ok(url) if !url.is_empty() => (url, None),
            _ => match start_cluster(None) {
                Ok((url, c)) => (url, Some(c)),
                Err(e) => panic!("cannot start a PostgreSQL server for this test: {e}"),
            },
        };
        let dbname = format!(
            "unas_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test server ({URL_ENV}): {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {dbname}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {dbname}: {e}"));
        Self {
            url: with_db(&admin_url, &dbname),
            admin_url,
            dbname,
            cluster,
        }
    }

    /// A fresh database on a throwaway cluster of its own serving TLS with the certificate
    /// `cert_pem` and its key `key_pem` (the configured server's TLS setup is unknown, so it
    /// is not used); panics with a clear message when no cluster can be started.
    pub fn with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::own_cluster(Some((cert_pem, key_pem)))
    }

    /// A fresh database on a throwaway cluster of its own without TLS.
    pub fn without_tls() -> Self {
        Self::own_cluster(None)
    }

    fn own_cluster(tls: Option<(&str, &str)>) -> Self {
        let (url, cluster) = start_cluster(tls)
            .unwrap_or_else(|e| panic!("cannot start a PostgreSQL server for this test: {e}"));
        Self {
            url: url.clone(),
            admin_url: url,
            dbname: "postgres".into(),
            cluster: Some(cluster),
        }
    }

    /// The server's URL with another (maybe missing) database.
    pub fn url_for(&self, db: &str) -> String {
        with_db(&self.admin_url, db)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.cluster.is_none() {
            if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.dbname
                ));
            }
        }
        // The cluster (if any) stops in its own Drop.
    }
}
