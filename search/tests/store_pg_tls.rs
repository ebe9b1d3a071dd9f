//! The PostgreSQL store over TLS, against a throwaway cluster serving a certificate made here
//! by a test CA (`support::Pg::with_tls`): `sslmode=verify-full` with that CA connects and is
//! encrypted; another CA, a host name the certificate does not list, and a missing CA file are
//! each refused with one clear error; `verify-ca` skips only the host check; `require` and the
//! default `prefer` encrypt without checking; `disable` does not encrypt. A worker runs a study
//! over `verify-full` and is refused with the wrong CA.

mod support;

use support::Pg;
use unas_search::fixture::{tiny_study, SyntheticQuality};
use unas_search::{
    open_store, ControllerConfig, Evaluators, PostgresStore, SearchError, Study, TrialStatus,
    Worker, WorkerOptions,
};

/// A CA named `ca_name` (certificate PEM) and a server certificate and key it signed for
/// `names`.
struct Certs {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn certs(ca_name: &str, names: &[&str]) -> Certs {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "unas test server");
    let server = params.signed_by(&key, &ca, &ca_key).unwrap();
    Certs {
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key_pem: key.serialize_pem(),
    }
}

fn message(r: Result<PostgresStore, SearchError>) -> String {
    match r {
        Ok(_) => panic!("connected, but the connection should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tls_modes_connect_encrypt_and_refuse_as_libpq_does() {
    // The server's certificate names `localhost` only.
    let good = certs("unas test CA", &["localhost"]);
    let pg = Pg::with_tls(&good.server_pem, &good.server_key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &good.ca_pem).unwrap();
    // Two wrong CAs: another name (the issuer is unknown), and the same name with another key
    // (the signature does not verify).
    let (wrong_ca, same_name_ca) = (
        dir.path().join("other-ca.pem"),
        dir.path().join("twin-ca.pem"),
    );
    std::fs::write(&wrong_ca, certs("another CA", &["localhost"]).ca_pem).unwrap();
    std::fs::write(&same_name_ca, certs("unas test CA", &["localhost"]).ca_pem).unwrap();
    let localhost = pg.url.replace("@127.0.0.1:", "@localhost:");
    let with = |url: &str, q: &str| format!("{url}?{q}");

    // verify-full with the right CA and a host the certificate names: encrypted.
    let full = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let mut s = PostgresStore::connect(&with(&localhost, &full)).unwrap();
    assert!(s.uses_tls().unwrap());

    // Another CA: refused, saying so, naming the CA file, without the password.
    let wrong = format!("sslmode=verify-full&sslrootcert={}", wrong_ca.display());
    let e = message(PostgresStore::connect(&with(&localhost, &wrong)));
    assert!(
        e.contains("not signed by a CA in sslrootcert=") && e.contains("other-ca.pem"),
        "{e}"
    );
    let password = pg.url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(!e.contains(password), "{e}");
    let twin = format!("sslmode=verify-full&sslrootcert={}", same_name_ca.display());
    let e = message(PostgresStore::connect(&with(&localhost, &twin)));
    assert!(
        e.contains("not signed by a CA in sslrootcert=") && e.contains("twin-ca.pem"),
        "{e}"
    );

    // A host the certificate does not name: refused by verify-full, accepted by verify-ca.
    let e = message(PostgresStore::connect(&with(&pg.url, &full)));
    assert!(
        e.contains("not valid for the host `127.0.0.1`") && e.contains("verify-ca"),
        "{e}"
    );
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    let mut s = PostgresStore::connect(&with(&pg.url, &ca_only)).unwrap();
    assert!(s.uses_tls().unwrap());
    let e = message(PostgresStore::connect(&with(
        &pg.url,
        &format!("sslmode=verify-ca&sslrootcert={}", wrong_ca.display()),
    )));
    assert!(e.contains("not signed by a CA"), "{e}");

    // A CA file that does not exist: one error naming the parameter and the file.
    let missing = dir.path().join("missing.pem");
    let e = message(PostgresStore::connect(&with(
        &localhost,
        &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
    )));
    assert!(
        e.contains("sslrootcert=") && e.contains("missing.pem"),
        "{e}"
    );

    // require and the default (prefer) encrypt without checking; disable does not encrypt.
    for (q, tls) in [("sslmode=require", true), ("connect_timeout=10", true)] {
        let mut s = PostgresStore::connect(&with(&pg.url, q)).unwrap();
        assert_eq!(s.uses_tls().unwrap(), tls, "{q}");
    }
    let mut s = PostgresStore::connect(&with(&pg.url, "sslmode=disable")).unwrap();
    assert!(!s.uses_tls().unwrap());
}

#[test]
fn require_is_refused_by_a_server_without_tls() {
    // `prefer` falls back to plain TCP; `require` is refused, saying what to change.
    let pg = Pg::without_tls();
    let mut s = PostgresStore::connect(&format!("{}?sslmode=prefer", pg.url)).unwrap();
    assert!(!s.uses_tls().unwrap());
    let e = message(PostgresStore::connect(&format!(
        "{}?sslmode=require",
        pg.url
    )));
    assert!(e.contains("the server does not offer TLS"), "{e}");
}

#[test]
fn a_worker_evaluates_a_study_over_verify_full_and_refuses_another_ca() {
    let good = certs("unas test CA", &["localhost"]);
    let pg = Pg::with_tls(&good.server_pem, &good.server_key_pem);
    let dir = tempfile::tempdir().unwrap();
    let (ca, wrong_ca) = (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"));
    std::fs::write(&ca, &good.ca_pem).unwrap();
    std::fs::write(&wrong_ca, certs("another CA", &["localhost"]).ca_pem).unwrap();
    let base = pg.url.replace("@127.0.0.1:", "@localhost:");
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());
    let cfg = tiny_study("tls", ControllerConfig::Random, 3, 1);
    Study::create_in(open_store(&url).unwrap(), cfg).unwrap();

    // The wrong CA: the worker cannot open the study.
    let wrong = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        wrong_ca.display()
    );
    let e = Worker::open(&wrong, "tls")
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("not signed by a CA in sslrootcert="), "{e}");

    // The right CA: a worker claims and finishes every trial while the controller proposes
    // them (as `unas search --workers` and `unas worker` do).
    let fast = unas_search::ExternalOptions {
        poll: std::time::Duration::from_millis(20),
        ..Default::default()
    };
    let mut study = Study::open_in(open_store(&url).unwrap(), "tls").unwrap();
    let evaluated = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let quality = SyntheticQuality::default();
            let mut worker = Worker::open(&url, "tls").unwrap();
            let latency = worker.config().latency.build().unwrap();
            let ev = Evaluators {
                latency: latency.as_ref(),
                quality: &quality,
            };
            let opts = WorkerOptions {
                lease: fast.clone(),
                ..Default::default()
            };
            worker.run(&opts, ev, &mut |_| {}).unwrap().evaluated
        });
        study.run_external(&fast, &mut |_| {}).unwrap();
        worker.join().unwrap()
    });
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 3);
    assert!(trials.iter().all(|t| t.status.is_final()), "{trials:?}");
    let distinct = trials.iter().filter(|t| t.duplicate_of.is_none()).count();
    assert_eq!(evaluated, distinct);
    assert!(trials.iter().any(|t| t.status == TrialStatus::Done));
}
