//! Tests of the PostgreSQL store's URL handling (the server tests are in search/tests/).

use super::secrets::percent_decode;
use super::*;

#[test]
fn passwords_are_found_and_scrubbed() {
    assert_eq!(
        password_of("postgres://u:s3cr%21t@h:5432/db").as_deref(),
        Some("s3cr%21t")
    );
    assert_eq!(
        password_of("postgres://u@h/db?password=pw&x=1").as_deref(),
        Some("pw")
    );
    assert_eq!(password_of("postgres://u@h/db"), None);
    assert_eq!(
        scrub("bad s3cr%21t and s3cr!t", Some("s3cr%21t")),
        "bad *** and ***"
    );
    assert_eq!(percent_decode("a%2"), "a%2");
}

#[test]
fn malformed_urls_are_one_clear_error_without_the_password() {
    for url in [
        "postgres://u:hunter2@localhost:notaport/db",
        "postgres://u:hunter2@localhost:5432/db?sslmode=require",
        "postgres://u:hunter2@localhost:5432/db?bogus_option=1",
    ] {
        let e = PostgresStore::connect(url).err().unwrap().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("postgres://u@localhost"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
