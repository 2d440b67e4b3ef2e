//! The one error of this crate: a setting that cannot work.

use std::fmt;

/// A configuration value is impossible; says which section and, where there is one, which key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The section: `GAN`, `baseline`, `synth`, `evaluation`.
    pub section: &'static str,
    /// The key as written in the JSON (`k`, `size.per_class`), when the check is about one key.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(section: &'static str, message: impl Into<String>) -> Self {
        Self {
            section,
            key: None,
            message: message.into(),
        }
    }

    pub(crate) fn keyed(
        section: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            section,
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} configuration: ", self.section)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}
