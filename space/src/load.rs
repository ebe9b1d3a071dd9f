//! Reading TOML descriptions with errors that name the file, the line and the field.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{ArchError, Location, SpaceError};

/// A TOML document kept beside what was parsed from it, so later validation errors can point at
/// the offending line.
#[derive(Clone, Debug)]
pub struct Source {
    /// File name (or `<preset NAME>`).
    pub file: PathBuf,
    /// The text.
    pub text: String,
}

impl Source {
    /// Reads a file.
    pub fn read(path: &Path) -> Result<Self, SpaceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpaceError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            file: path.to_path_buf(),
            text,
        })
    }

    /// Deserialises the document, reporting the field path and line of the first problem.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, SpaceError> {
        let de = toml::Deserializer::new(&self.text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner
                .message()
                .trim()
                .lines()
                .collect::<Vec<_>>()
                .join("; ");
            let mut field = if path == "." || path.is_empty() {
                String::new()
            } else {
                path
            };
            // Name the unknown field itself, not just its table.
            if let Some(rest) = message.strip_prefix("unknown field `") {
                if let Some(name) = rest.split('`').next() {
                    if field.rsplit('.').next() != Some(name) {
                        field = join_field(&field, name);
                    }
                }
            }
            let (line, column) = match inner.span() {
                Some(span) => {
                    let (l, c) = line_col(&self.text, span.start);
                    (Some(l), Some(c))
                }
                None => self.locate(&field),
            };
            if field.is_empty() {
                field = "<document>".into();
            }
            SpaceError::Parse {
                at: Location {
                    file: self.file.clone(),
                    line,
                    column,
                },
                field,
                message,
            }
        })
    }

    /// Turns a validation error into a located error.
    pub fn invalid(&self, err: ArchError) -> SpaceError {
        self.invalid_at(&err.field, err.message)
    }

    /// An invalid-field error located at `field`'s line.
    pub fn invalid_at(&self, field: &str, message: impl Into<String>) -> SpaceError {
        let (line, column) = self.locate(field);
        SpaceError::Invalid {
            at: Location {
                file: self.file.clone(),
                line,
                column,
            },
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Line and column of a field path such as `down[2].attentions`; falls back to the
    /// deepest table that exists when the field itself was left to its default.
    pub fn locate(&self, field: &str) -> (Option<usize>, Option<usize>) {
        let Ok(doc) = toml_edit::ImDocument::parse(self.text.as_str()) else {
            return (None, None);
        };
        let mut item: &toml_edit::Item = doc.as_item();
        let mut best: Option<std::ops::Range<usize>> = None;
        for seg in field.split('.').filter(|s| !s.is_empty()) {
            let (name, index) = split_index(seg);
            let Some(table) = item.as_table_like() else {
                break;
            };
            let Some((key, next)) = table.get_key_value(name) else {
                break;
            };
            best = key.span().or(best);
            item = next;
            if let Some(i) = index {
                match item.get(i) {
                    Some(elem) => {
                        best = elem.span().or_else(|| table_span(elem)).or(best);
                        item = elem;
                    }
                    None => break,
                }
            }
        }
        match best {
            Some(span) => {
                let (l, c) = line_col(&self.text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        }
    }
}

fn table_span(item: &toml_edit::Item) -> Option<std::ops::Range<usize>> {
    item.as_table().and_then(|t| t.span())
}

fn split_index(seg: &str) -> (&str, Option<usize>) {
    match seg.find('[') {
        Some(open) => {
            let idx = seg[open + 1..].trim_end_matches(']').parse().ok();
            (&seg[..open], idx)
        }
        None => (seg, None),
    }
}

fn join_field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
