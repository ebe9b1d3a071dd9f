//! A quality evaluator whose results are kept by architecture hash in a JSON-lines file, so
//! that runs sharing `[quality]` settings (the strategy benchmark's seeds and strategies, and
//! later invocations) score each architecture once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use unas_space::UNetArch;

use crate::config::StudyConfig;
use crate::objective::{QualityError, QualityEvaluator, QualityResult};

/// Called after each new (not cached) evaluation: the arch hash, its seconds, and the number
/// of new evaluations so far.
pub type OnMiss = Box<dyn Fn(&str, f64, usize) + Sync>;

/// `inner` with its results cached in `file`.
pub struct FileCache<'a> {
    inner: &'a (dyn QualityEvaluator + Sync),
    file: PathBuf,
    map: Mutex<HashMap<String, Result<QualityResult, String>>>,
    misses: Mutex<usize>,
    on_miss: Option<OnMiss>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheLine {
    hash: String,
    result: Result<QualityResult, String>,
}

impl<'a> FileCache<'a> {
    /// Opens (or starts) the cache `file` over `inner`; a torn last line (a run killed
    /// mid-write) is skipped and its architecture evaluated again.
    pub fn open(
        inner: &'a (dyn QualityEvaluator + Sync),
        file: PathBuf,
        on_miss: Option<OnMiss>,
    ) -> Self {
        let mut map = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for l in text.lines() {
                if let Ok(c) = serde_json::from_str::<CacheLine>(l) {
                    map.insert(c.hash, c.result);
                }
            }
        }
        Self {
            inner,
            file,
            map: Mutex::new(map),
            misses: Mutex::new(0),
            on_miss,
        }
    }

    /// The cache file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// New evaluations (cache misses) so far.
    pub fn misses(&self) -> usize {
        *self.misses.lock().expect("cache")
    }
}

/// The cache file of `config`'s quality settings and space in `dir`: named by an FNV-1a
/// fingerprint of them, so other settings never share a file.
pub fn cache_file(dir: &Path, config: &StudyConfig) -> PathBuf {
    let key = serde_json::to_string(&(&config.quality, &config.space)).expect("settings serialise");
    dir.join(format!("quality-cache-{:016x}.jsonl", fingerprint(&key)))
}

/// FNV-1a (64 bit) of `text`.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl QualityEvaluator for FileCache<'_> {
    fn describe(&self) -> String {
        format!(
            "{} (cached in {})",
            self.inner.describe(),
            self.file.display()
        )
    }

    fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<QualityResult, QualityError> {
        let hash = arch.hash_id();
        if let Some(r) = self.map.lock().expect("cache").get(&hash) {
            return r.clone().map_err(QualityError::Failed);
        }
        let t0 = Instant::now();
        let r = self.inner.evaluate(arch, seed).map_err(|e| e.to_string());
        let line = serde_json::to_string(&CacheLine {
            hash: hash.clone(),
            result: r.clone(),
        })
        .expect("cache line serialises");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
        let misses = {
            let mut m = self.misses.lock().expect("cache");
            *m += 1;
            *m
        };
        if let Some(f) = &self.on_miss {
            f(&hash, t0.elapsed().as_secs_f64(), misses);
        }
        self.map
            .lock()
            .expect("cache")
            .entry(hash)
            .or_insert(r)
            .clone()
            .map_err(QualityError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_strings() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo).
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
