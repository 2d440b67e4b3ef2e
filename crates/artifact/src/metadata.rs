use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ArtifactError, CODE_VERSION, Result};

/// Footer keys every emocycle artifact uses. Values are plain strings; structured values are
/// JSON, so a notebook can `json.loads` them.
pub mod keys {
    /// [`crate::CODE_VERSION`] of the writer.
    pub const CODE_VERSION: &str = "emocycle.code_version";
    /// The writing stage's code fingerprint (its crate's `CODE_FINGERPRINT`): the code part of
    /// the stage's freshness keys.
    pub const CODE_FINGERPRINT: &str = "emocycle.code_fingerprint";
    /// The stage that wrote the file (`features`, `train`, ...).
    pub const STAGE: &str = "emocycle.stage";
    /// The stage's configuration, as JSON.
    pub const CONFIG: &str = "emocycle.config";
    /// The seeds used, as a JSON object.
    pub const SEEDS: &str = "emocycle.seeds";
    /// The input files and their sha256, as a JSON object `{path: sha256}`.
    pub const INPUTS: &str = "emocycle.inputs";
    /// One sha256 over config, inputs and code version: equal fingerprints mean equal outputs.
    pub const FINGERPRINT: &str = "emocycle.fingerprint";
}

/// Footer key-value metadata of an artifact, ordered by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// Metadata for a file written by `stage`, stamped with the code version and the stage's
    /// code fingerprint (`CODE_FINGERPRINT` of the stage's crate).
    pub fn for_stage(stage: &str, code_fingerprint: &str) -> Self {
        let mut metadata = Self::default();
        metadata.insert(keys::CODE_VERSION, CODE_VERSION);
        metadata.insert(keys::CODE_FINGERPRINT, code_fingerprint);
        metadata.insert(keys::STAGE, stage);
        metadata
    }

    /// Sets a plain string value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets a value serialised as JSON.
    pub fn insert_json<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        value: &T,
    ) -> &mut Self {
        let text = serde_json::to_string(value).expect("metadata values serialise to JSON");
        self.0.insert(key.into(), text);
        self
    }

    /// A plain string value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required value parsed from JSON; `path` names the file in the error.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str, path: &Path) -> Result<T> {
        let text = self.get(key).ok_or_else(|| ArtifactError::Metadata {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem: "missing".to_string(),
        })?;
        serde_json::from_str(text).map_err(|error| ArtifactError::Metadata {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem: format!("not the expected JSON: {error}"),
        })
    }

    /// All entries, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }
}
