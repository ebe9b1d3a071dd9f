//! Canonical architecture ids: SHA-256 of the canonical JSON of the architecture (its `name`
//! excluded), first 16 hex digits. Field order is fixed by the struct definitions and floats are
//! written in shortest round-trip form, so the id is the same on every platform and run.

use sha2::{Digest, Sha256};

use crate::UNetArch;

impl UNetArch {
    /// Canonical JSON (the `name` left empty): the bytes that are hashed.
    pub fn canonical_json(&self) -> String {
        let mut a = self.clone();
        a.name.clear();
        serde_json::to_string(&a).expect("UNetArch always serialises")
    }

    /// The architecture's id: 16 hex digits of SHA-256 over [`UNetArch::canonical_json`].
    pub fn hash_id(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}
