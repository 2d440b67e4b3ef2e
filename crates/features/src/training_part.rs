//! A scope's target training part as every model stage reads it: the labelled rows that a
//! scope's CycleGANs and baselines learn from, min-max normalised, with the leakage check that
//! keeps a fold's test session out.
//!
//! **Reads** the feature stage's own outputs (`<target>.parquet`, `<target>.folds.parquet` for
//! fold scopes, `norm/<target>.<subset>.parquet`); writes nothing.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;

use emocycle_artifact::{read_parquet, read_parquet_metadata, sha256_file};
use emocycle_config::layout::{Scope, StageInputs};

use crate::error::{FeatureError, Result};
use crate::{FeatureMatrix, Fold, Normaliser, Scaling};

fn inconsistent(path: &Path, message: impl Into<String>) -> FeatureError {
    FeatureError::Inconsistent {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Refuses training data that holds the fold's held-out test session.
pub fn ensure_no_test_session<T: PartialEq + Display>(
    train_sessions: &[T],
    held_out: &T,
) -> Result<()> {
    match train_sessions.iter().find(|session| *session == held_out) {
        Some(session) => Err(FeatureError::TestSessionInTraining {
            session: session.to_string(),
        }),
        None => Ok(()),
    }
}

impl Normaliser {
    /// Reads the statistics at `path` and checks that they were fitted on `subset` (`all`,
    /// `fold<k>-train`) and cover exactly `names`, so that a file of another fold or corpus
    /// cannot slip in.
    pub fn read_fitted(path: &Path, subset: &str, names: &[String]) -> Result<Normaliser> {
        let metadata = read_parquet_metadata(path)?;
        let found = metadata.get("emocycle.normalisation.subset").unwrap_or("");
        if found != subset {
            return Err(inconsistent(
                path,
                format!("normalisation subset is {found:?}, expected {subset:?}"),
            ));
        }
        let normaliser = Normaliser::read(path)?;
        if normaliser.features != names {
            return Err(inconsistent(
                path,
                "the normalisation's features are not the corpus's features",
            ));
        }
        Ok(normaliser)
    }
}

/// A scope's target training part: the labelled rows a scope's models learn from, min-max
/// normalised on themselves as the GAN stage trains on them, and where they came from.
#[derive(Debug, Clone)]
pub struct TargetPart {
    /// The selected target rows (every row for `all`, the other folds' rows for `fold<k>`),
    /// with `values` min-max normalised with the scope's target normalisation.
    pub matrix: FeatureMatrix,
    /// The held-out session, for fold scopes.
    pub held_out_session: Option<String>,
    /// The target files read (features, normalisation and, for fold scopes, folds) and their
    /// sha256.
    pub inputs: BTreeMap<String, String>,
}

/// Reads the target corpus, keeps the scope's training part and min-max normalises it with the
/// scope's target normalisation. For a fold scope, the rows are those the fold file assigns to
/// other folds, and their sessions are checked independently: a row of the fold's test session
/// here is an error, never training data. The normalisation must have been fitted on exactly
/// this part (its subset name and row count are checked).
pub fn load_target_part(inputs: &StageInputs, scope: &Scope) -> Result<TargetPart> {
    let target = FeatureMatrix::read(&inputs.target)?;
    let (mut train_part, held_out_session, subset) = match scope {
        Scope::All => (target, None, scope.training_subset()),
        Scope::Fold(number) => {
            let (folds_frame, folds_metadata) = read_parquet(&inputs.target_folds)?;
            let folds: Vec<Fold> =
                folds_metadata.get_json("emocycle.folds", &inputs.target_folds)?;
            let fold = folds
                .iter()
                .find(|fold| fold.number == *number)
                .ok_or_else(|| {
                    inconsistent(
                        &inputs.target_folds,
                        format!("there is no fold {number} (folds 1..={})", folds.len()),
                    )
                })?;
            let fold_of: BTreeMap<String, u32> = folds_frame
                .column("utterance_id")
                .ok()
                .and_then(|ids| ids.str().ok().cloned())
                .zip(
                    folds_frame
                        .column("fold")
                        .ok()
                        .and_then(|folds| folds.u32().ok().cloned()),
                )
                .map(|(ids, folds)| {
                    ids.iter()
                        .zip(folds.iter())
                        .filter_map(|(id, fold)| Some((id?.to_string(), fold?)))
                        .collect()
                })
                .ok_or_else(|| {
                    inconsistent(&inputs.target_folds, "needs columns utterance_id and fold")
                })?;
            if let Some(missing) = target.ids.iter().find(|id| !fold_of.contains_key(*id)) {
                return Err(inconsistent(
                    &inputs.target_folds,
                    format!(
                        "utterance {missing:?} of {} has no fold",
                        inputs.target.display()
                    ),
                ));
            }
            let selected = target.select(|row| fold_of[&target.ids[row]] as usize != *number);
            let sessions: Vec<String> = selected
                .sessions
                .iter()
                .map(|s| s.clone().unwrap_or_default())
                .collect();
            ensure_no_test_session(&sessions, &fold.test_session)?;
            (
                selected,
                Some(fold.test_session.clone()),
                scope.training_subset(),
            )
        }
    };
    let target_norm =
        Normaliser::read_fitted(&inputs.target_normalisation, &subset, &train_part.names)?;
    if target_norm.rows != train_part.rows() as u64 {
        return Err(inconsistent(
            &inputs.target_normalisation,
            format!(
                "fitted on {} rows, but the scope's training part has {}",
                target_norm.rows,
                train_part.rows()
            ),
        ));
    }
    target_norm.transform_rows(&mut train_part.values, Scaling::MinMax);
    let mut files = vec![&inputs.target, &inputs.target_normalisation];
    if matches!(scope, Scope::Fold(_)) {
        files.push(&inputs.target_folds);
    }
    let mut hashes = BTreeMap::new();
    for path in files {
        hashes.insert(path.display().to_string(), sha256_file(path)?);
    }
    Ok(TargetPart {
        matrix: train_part,
        held_out_session,
        inputs: hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_session_in_training_data_is_refused() {
        ensure_no_test_session(&["Ses01", "Ses02"], &"Ses05").unwrap();
        let err = ensure_no_test_session(&[1, 2, 5], &5).unwrap_err();
        assert!(
            matches!(err, FeatureError::TestSessionInTraining { ref session } if session == "5")
        );
    }
}
