//! Architectures and search spaces shipped with unas (`configs/`), embedded in the binary so
//! they can be named (`sd15`) instead of given as files.

use std::path::{Path, PathBuf};

use crate::error::SpaceError;
use crate::load::Source;
use crate::UNetArch;

/// Embedded architecture presets: (name, TOML).
pub const ARCH_PRESETS: &[(&str, &str)] = &[
    ("sd15", include_str!("../../configs/archs/sd15.toml")),
    (
        "decidiffusion",
        include_str!("../../configs/archs/decidiffusion.toml"),
    ),
    ("tiny", include_str!("../../configs/archs/tiny.toml")),
    (
        "tiny-nas",
        include_str!("../../configs/archs/tiny-nas.toml"),
    ),
];

/// Embedded search-space presets: (name, TOML).
pub const SPACE_PRESETS: &[(&str, &str)] = &[
    ("default", include_str!("../../configs/spaces/default.toml")),
    ("tiny", include_str!("../../configs/spaces/tiny.toml")),
    (
        "tiny-depth",
        include_str!("../../configs/spaces/tiny-depth.toml"),
    ),
];

/// Finds `spec` as an existing file, else as a preset name in `presets`.
pub fn resolve(spec: &str, presets: &[(&str, &str)]) -> Result<Source, SpaceError> {
    let path = Path::new(spec);
    if path.exists() || spec.ends_with(".toml") || spec.contains('/') {
        return Source::read(path);
    }
    match presets.iter().find(|(name, _)| *name == spec) {
        Some((name, text)) => Ok(Source {
            file: PathBuf::from(format!("<preset {name}>")),
            text: (*text).to_string(),
        }),
        None => Err(SpaceError::UnknownPreset {
            name: spec.to_string(),
            known: presets
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Loads and validates an architecture from a file or preset name.
pub fn load_arch(spec: &str) -> Result<UNetArch, SpaceError> {
    let src = resolve(spec, ARCH_PRESETS)?;
    arch_from_source(&src)
}

/// Parses and validates an architecture from a source.
pub fn arch_from_source(src: &Source) -> Result<UNetArch, SpaceError> {
    let arch: UNetArch = src.parse()?;
    arch.validate().map_err(|e| src.invalid(e))?;
    Ok(arch)
}

/// An embedded architecture preset by name (panics only if the shipped presets are broken,
/// which the tests rule out).
pub fn preset(name: &str) -> UNetArch {
    load_arch(name).unwrap_or_else(|e| panic!("shipped preset {name} is invalid: {e}"))
}
