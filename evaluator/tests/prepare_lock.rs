//! Processes (here: threads with their own file handles) that prepare the proxy's data in one
//! cache at the same time prepare it once: one trains the small VAE and the extractor, the
//! other waits on the cache's lock and loads the result.

use unas_evaluator::quality::proxy::{Proxy, ProxyConfig};
use unas_space::preset;

#[test]
fn two_preparations_of_one_cache_train_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ProxyConfig {
        images: 320,
        val_items: 64,
        vae_steps: 30,
        extractor_images: 300,
        extractor_epochs: 1,
        cache_dir: Some(dir.path().to_path_buf()),
        ..ProxyConfig::default()
    };
    let dim = preset("tiny-nas").stem.cross_attention_dim;
    let run = || {
        let mut lines = Vec::new();
        let proxy = Proxy::prepare(&cfg, dim, &mut |l| lines.push(l.to_string())).unwrap();
        (proxy.describe_data(), lines)
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join().unwrap(), b.join().unwrap())
    });
    let trained = |lines: &[String]| lines.iter().any(|l| l.contains("training the small VAE"));
    assert_eq!(
        [trained(&a.1), trained(&b.1)]
            .iter()
            .filter(|&&t| t)
            .count(),
        1,
        "exactly one preparation trains: {:?} / {:?}",
        a.1,
        b.1
    );
    let loaded = if trained(&a.1) { &b.1 } else { &a.1 };
    assert!(
        loaded.iter().any(|l| l.contains("using cached data")),
        "{loaded:?}"
    );
    assert_eq!(a.0, b.0);
}
