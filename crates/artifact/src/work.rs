//! A stage's work as units: each stage crate plans its work as a list of [`WorkUnit`]s (a
//! corpus, a baseline of a scope, a GAN run, a synthetic set, a whole evaluation) that know
//! whether their outputs are up to date and how to make them. One driver, the command line's,
//! runs any stage's units the same way: skips the fresh ones, shows progress, records the time.

use std::path::PathBuf;

/// Where a unit reports how far it is. Every method may be called from the unit's thread only.
pub trait Progress {
    /// The amount of work, in the unit's own steps (epochs, rows, classifiers).
    fn set_length(&self, length: u64);
    /// Steps done so far.
    fn set_position(&self, position: u64);
    /// What the unit is doing now, or its latest losses.
    fn set_message(&self, message: String);
}

/// What a unit that ran says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// The end of its summary line: sizes, final losses, the device.
    pub summary: String,
    /// Lines worth a line of their own (e.g. inputs left out).
    pub notes: Vec<String>,
}

impl Done {
    /// A unit's summary, without notes.
    pub fn summary(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            notes: Vec::new(),
        }
    }
}

/// One unit of a stage's work. Its freshness key is computed from its own typed settings, the
/// code fingerprint of its stage crate and the sha256 of its inputs (see
/// [`is_fresh`](crate::is_fresh)); it writes only its own [`outputs`](WorkUnit::outputs).
pub trait WorkUnit {
    /// The stage crate's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// How progress lines name the unit (`fold2 lambda_cls=2`); empty for a stage that is one
    /// unit.
    fn label(&self) -> String;

    /// Whether every output exists and was made by this code from these settings and inputs.
    ///
    /// # Errors
    /// When an input cannot be read: the unit could not run either.
    fn is_fresh(&self) -> Result<bool, Self::Error>;

    /// The files the unit makes or replaces.
    fn outputs(&self) -> Vec<PathBuf>;

    /// For units that train long enough to be worth a process of their own: the command-line
    /// flags that select exactly this unit within its stage's command. `None` (the default):
    /// the unit runs in the calling process.
    fn child_flags(&self) -> Option<Vec<(&'static str, String)>> {
        None
    }

    /// Makes the outputs.
    ///
    /// # Errors
    /// The stage's errors; outputs already written are complete (atomic writes).
    fn execute(&self, progress: &dyn Progress) -> Result<Done, Self::Error>;
}
