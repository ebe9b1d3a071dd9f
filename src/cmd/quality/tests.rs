//! Tests of the parent module.

/// The proxy-settings files shipped in `configs/proxy/` (not studies: `configs/*.toml` are
/// checked as studies by unas-search) read and pass the proxy's checks.
#[test]
fn the_shipped_proxy_files_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/proxy");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = super::read_proxy_config(&path)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
            cfg.check()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1, "no proxy files in {dir}");
}
