//! What a study stores as its settings, and where two settings first differ.

use serde::{Deserialize, Serialize};
use unas_space::SearchSpace;

use crate::config::StudyConfig;

/// What is stored as a study's settings: the normalised config and the resolved space.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoredSettings {
    /// The study configuration (`window` made explicit).
    pub config: StudyConfig,
    /// The search space as resolved at creation.
    pub space: SearchSpace,
}

/// The dotted path of the first field where `a` and `b` differ (`None` when equal).
pub(crate) fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &p) {
                            return Some(d);
                        }
                    }
                    _ => return Some(p),
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(if path.is_empty() {
            "<settings>".into()
        } else {
            path.into()
        }),
    }
}
