//! Shipped prepared data (`quality.prepared`), checked and copied into the cache.

#[allow(unused_imports)]
use super::*;

/// Copies a shipped prepared-data folder `src` to the cache folder `dst` after checking that
/// its manifest records the settings key `key_json` and that every file matches `SHA256SUMS`
/// (`<hex>  <file>` lines); written beside `dst` and renamed, so a reader never sees half.
pub(super) fn copy_prepared(
    src: &std::path::Path,
    dst: &std::path::Path,
    key_json: &str,
) -> Result<(), EvalError> {
    let file_err = |file: &std::path::Path, message: String| EvalError::File {
        file: file.to_path_buf(),
        message,
    };
    let manifest = src.join("manifest.json");
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| file_err(&manifest, e.to_string()))?;
    let m: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| file_err(&manifest, e.to_string()))?;
    let want: serde_json::Value = serde_json::from_str(key_json).expect("valid key");
    if m["provenance"]["key"] != want {
        return Err(file_err(
            &manifest,
            "provenance.key: prepared for other settings than these".into(),
        ));
    }
    let sums = src.join("SHA256SUMS");
    let listing = std::fs::read_to_string(&sums).map_err(|e| file_err(&sums, e.to_string()))?;
    let tmp = dst.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| file_err(&tmp, e.to_string()))?;
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let (hex, name) = line
            .split_once("  ")
            .ok_or_else(|| file_err(&sums, format!("bad line `{line}`")))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(file_err(&sums, format!("bad file name `{name}`")));
        }
        let file = src.join(name);
        let bytes = std::fs::read(&file).map_err(|e| file_err(&file, e.to_string()))?;
        let got = sha256_hex(&bytes);
        if got != hex {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(file_err(
                &file,
                format!("SHA-256 {got}, SHA256SUMS says {hex}"),
            ));
        }
        let out = tmp.join(name);
        std::fs::write(&out, &bytes).map_err(|e| file_err(&out, e.to_string()))?;
    }
    if !tmp.join("manifest.json").exists() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(file_err(&sums, "does not list manifest.json".into()));
    }
    match std::fs::rename(&tmp, dst) {
        Ok(()) => Ok(()),
        // Another process copied the same verified files first (two commands started
        // together on one cache): theirs is as good as ours.
        Err(_) if dst.join("manifest.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(file_err(dst, e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_prepared;
    use sha2::{Digest, Sha256};

    /// A prepared folder whose manifest records `key` and whose SHA256SUMS lists its files.
    fn prepared(dir: &std::path::Path, key: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let manifest = format!(r#"{{"provenance": {{"key": {key}}}}}"#);
        std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
        std::fs::write(dir.join("latents.bin"), b"0123").unwrap();
        let sums: String = ["manifest.json", "latents.bin"]
            .iter()
            .map(|name| {
                let hex: String = Sha256::digest(std::fs::read(dir.join(name)).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("{hex}  {name}\n")
            })
            .collect();
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    }

    #[test]
    fn a_copy_finished_first_by_another_process_is_accepted() {
        let root = tempfile::tempdir().unwrap();
        let key = r#"{"seed": 1}"#;
        let src = root.path().join("shipped");
        prepared(&src, key);
        let dst = root.path().join("cache/proxy-1");
        // The other process's copy is already in place.
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        copy_prepared(&src, &dst, key).unwrap();
        copy_prepared(&src, &dst, key).unwrap();
        assert_eq!(std::fs::read(dst.join("latents.bin")).unwrap(), b"0123");
        let left: Vec<_> = std::fs::read_dir(dst.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("proxy-1")],
            "no tmp folder left"
        );
    }

    #[test]
    fn a_copy_for_other_settings_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("shipped");
        prepared(&src, r#"{"seed": 1}"#);
        let err = copy_prepared(&src, &root.path().join("proxy-2"), r#"{"seed": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("provenance.key"), "{err}");
    }
}
