//! Pipeline configuration: one JSON file describes an experiment end to end.
//!
//! Reads a pipeline file (`pipelines/*.json`) and validates all of it into typed structs before
//! any stage runs: unknown keys, missing files and impossible values are errors that name the
//! key. Writes nothing. Relative paths in the file are relative to the file's own directory; the
//! run's outputs go to `output_dir` (default `runs/<name>`, relative to the working directory).

use std::path::{Path, PathBuf};

use emocycle_config::augment::{BaselineConfig, BaselineRequest, baseline_path};
use emocycle_config::device::DeviceChoice;
use emocycle_config::eval::EvalConfig;
pub use emocycle_config::fidelity::Fidelity;
use emocycle_config::gan::{Engine, GanConfig};
use emocycle_config::layout::{Scope, ScopeDirs, StageInputs, SynthLayout, gan_seed_value};
use emocycle_config::slurm::SlurmConfig;
use emocycle_config::synth::SynthConfig;
use emocycle_features::{CorpusSpec, FeatureLayout, FeaturesConfig, FoldScheme};
use serde::{Deserialize, Serialize};

/// Errors in a pipeline file.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The pipeline file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is malformed, has an unknown key or a value of the wrong type.
    #[error("{path}: {source}")]
    Json {
        /// The pipeline file.
        path: PathBuf,
        /// serde's message, with the key and the line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A value is impossible.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The pipeline file.
        path: PathBuf,
        /// The offending key, dotted (`roles.source`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Which corpus plays which part of the paper's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// The labelled corpus (IEMOCAP's role): GAN targets and within-corpus evaluation.
    pub target: String,
    /// The unlabelled corpus (TEDLIUM's role): the GAN's source.
    pub source: String,
    /// The cross-corpus test set (MSP-IMPROV's role), if any.
    #[serde(default)]
    pub cross_corpus: Option<String>,
}

/// Which CycleGANs make the synthetic data of a within-corpus fold (the evaluation's type: one
/// definition for the GAN section and the evaluation).
pub use emocycle_config::eval::SyntheticScope;

/// The lambda_cls sweep: the paper's two values (0 and 2) and the points between and beyond
/// that its "future work" asks about.
fn default_lambda_cls() -> Vec<f64> {
    vec![0.0, 0.5, 1.0, 2.0, 4.0]
}

fn default_gan_seeds() -> u32 {
    1
}

/// The GAN stage's part of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanStageConfig {
    /// One joint training per value (the paper: 0 and 2; default: the sweep 0, 0.5, 1, 2, 4).
    /// Empty: no CycleGAN at all, only the baselines (which must then be given).
    #[serde(default = "default_lambda_cls")]
    pub lambda_cls: Vec<f64>,
    /// Generators trained per scope and lambda_cls, each from its own seed (pretraining
    /// included), so that the tables can split their spread into a classifier part and a
    /// generator part. Default 1 (the paper). The first seed is the pipeline's `seed`; raising
    /// this keeps every run already trained.
    #[serde(default = "default_gan_seeds")]
    pub seeds: u32,
    /// Per-fold (default) or all-sessions CycleGANs for within-corpus folds.
    #[serde(default)]
    pub synthetic_scope: SyntheticScope,
    /// Network sizes, optimiser and schedule; defaults are the paper's. Its `lambda_cls` and
    /// `seed` are set from `gan.lambda_cls` and the pipeline's `seed`.
    #[serde(default)]
    pub network: GanConfig,
    /// Keep each finished run's resumable checkpoint (`pretrain.ckpt.safetensors`,
    /// `train.ckpt.safetensors`: the Adam moments, about 3.6 times the model's size), so that a
    /// later `--resume` with more epochs continues from it. Default: deleted once the run's
    /// outputs are written.
    #[serde(default)]
    pub keep_checkpoints: bool,
    /// How the GAN stage's runs train: `auto` (default: the fused grid on CUDA, one process
    /// per run on the CPU), `per-run` or `grid`. Neither changes the method, but they draw
    /// some dropout masks from other sources (docs/method.md), so their weights differ.
    #[serde(default)]
    pub engine: Engine,
    /// Memory one fused grid may use, GiB (default 16): the grid engine trains the stage's runs
    /// in groups whose estimated memory (parameters, gradients, Adam moments, activations and
    /// each run's data) fits it.
    #[serde(default = "default_grid_memory_gib")]
    pub grid_memory_gib: f64,
}

fn default_grid_memory_gib() -> f64 {
    16.0
}

impl Default for GanStageConfig {
    fn default() -> Self {
        Self {
            lambda_cls: default_lambda_cls(),
            seeds: default_gan_seeds(),
            synthetic_scope: SyntheticScope::default(),
            network: GanConfig::default(),
            keep_checkpoints: false,
            engine: Engine::default(),
            grid_memory_gib: default_grid_memory_gib(),
        }
    }
}

/// A whole pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The experiment's name (letters, digits, `_`, `-`); names the default output directory.
    pub name: String,
    /// Where the run's artifacts go; default `runs/<name>`.
    #[serde(default)]
    pub output_dir: Option<PathBuf>,
    /// The base seed every stage derives its seeds from.
    #[serde(default)]
    pub seed: u64,
    /// Where models run: `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceChoice,
    /// libtorch's intra-op threads on the CPU; default: libtorch's choice (one per core). Small
    /// networks on a busy 2-core machine run several times faster with 1 (docs/benchmarks.md's history).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Where the paper and its published code disagree: `paper` (default) or `published-code`
    /// (one more epoch in every loop, the last partial classifier batch left out, the code's
    /// classifier defaults; see [`Fidelity`]).
    #[serde(default)]
    pub fidelity: Fidelity,
    /// The corpora, all with the same feature set.
    pub corpora: Vec<CorpusSpec>,
    /// Which corpus is which.
    pub roles: Roles,
    /// The GAN stage.
    #[serde(default)]
    pub gan: GanStageConfig,
    /// Synthetic-set generation and its quality report.
    #[serde(default)]
    pub synth: SynthConfig,
    /// Baseline augmentation methods, each making a synthetic set per scope next to the
    /// CycleGAN's (`synth/<scope>/<name>/`), evaluated and reported beside it. Default: none.
    #[serde(default)]
    pub baselines: Vec<BaselineConfig>,
    /// The evaluation stage. Its `lambda_cls`, `baselines`, `synthetic_scope` and `seed` come
    /// from `gan.lambda_cls`, `baselines`, `gan.synthetic_scope` and the pipeline's `seed`.
    #[serde(default)]
    pub evaluation: EvalConfig,
    /// Resources of the Slurm jobs of `emocycle submit`; no effect on local runs.
    #[serde(default)]
    pub slurm: SlurmConfig,
}

/// A validated pipeline and where it came from.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it was read from.
    pub path: PathBuf,
    /// The configuration, with corpus paths resolved against the file's directory.
    pub config: PipelineConfig,
}

impl Pipeline {
    /// Reads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(path, &text)
    }

    /// Parses and validates pipeline JSON; `path` locates relative paths and names errors.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, PipelineError> {
        let text = expand_variables(path, text, |name| std::env::var(name).ok())?;
        let mut config: PipelineConfig =
            serde_json::from_str(&text).map_err(|source| PipelineError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.corpora = FeaturesConfig {
            corpora: config.corpora,
        }
        .resolved(base)
        .corpora;
        let pipeline = Self {
            path: path.to_path_buf(),
            config,
        };
        pipeline.validate()?;
        Ok(pipeline)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> PipelineError {
        PipelineError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), PipelineError> {
        let config = &self.config;
        if config.name.is_empty()
            || !config
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(self.invalid("name", "must be non-empty letters, digits, '_' or '-'"));
        }
        for (index, corpus) in config.corpora.iter().enumerate() {
            corpus
                .validate()
                .map_err(|error| self.invalid(format!("corpora[{index}]"), error.to_string()))?;
        }
        self.features()
            .validate()
            .map_err(|error| self.invalid("corpora", error.to_string()))?;
        let roles = &config.roles;
        for (key, name) in [
            ("roles.target", Some(&roles.target)),
            ("roles.source", Some(&roles.source)),
            ("roles.cross_corpus", roles.cross_corpus.as_ref()),
        ] {
            if let Some(name) = name
                && !config.corpora.iter().any(|corpus| &corpus.name == name)
            {
                return Err(self.invalid(key, format!("no corpus is named {name:?}")));
            }
        }
        let target = self.corpus(&roles.target).expect("checked above");
        if target.labels.is_none() {
            return Err(self.invalid(
                "roles.target",
                format!("corpus {:?} has no labels", target.name),
            ));
        }
        if let Some(cross) = roles
            .cross_corpus
            .as_deref()
            .and_then(|name| self.corpus(name))
            && cross.labels.is_none()
        {
            return Err(self.invalid(
                "roles.cross_corpus",
                format!("corpus {:?} has no labels", cross.name),
            ));
        }
        if roles.source == roles.target {
            return Err(self.invalid(
                "roles.source",
                "the source corpus must differ from the target",
            ));
        }
        let gan = &config.gan;
        let defaults = GanConfig::default();
        if gan.network.lambda_cls != defaults.lambda_cls {
            return Err(self.invalid(
                "gan.network.lambda_cls",
                "set the list gan.lambda_cls instead",
            ));
        }
        if gan.network.seed != defaults.seed {
            return Err(self.invalid("gan.network.seed", "set the pipeline's seed instead"));
        }
        // An empty list trains no CycleGAN: the baselines alone are evaluated.
        if (gan.lambda_cls.is_empty() && config.baselines.is_empty())
            || gan
                .lambda_cls
                .iter()
                .any(|value| !(value.is_finite() && *value >= 0.0))
        {
            return Err(self.invalid(
                "gan.lambda_cls",
                "must list finite values >= 0 (it may be empty only when baselines are given)",
            ));
        }
        for (index, value) in gan.lambda_cls.iter().enumerate() {
            if gan.lambda_cls[..index].contains(value) {
                return Err(self.invalid("gan.lambda_cls", format!("lists {value} twice")));
            }
        }
        if !(gan.grid_memory_gib.is_finite() && gan.grid_memory_gib > 0.0) {
            return Err(self.invalid("gan.grid_memory_gib", "must be a positive number of GiB"));
        }
        if gan.seeds == 0 {
            return Err(self.invalid(
                "gan.seeds",
                "must be at least 1 (the generators trained per scope and lambda_cls)",
            ));
        }
        gan.network
            .validate()
            .map_err(|error| self.invalid("gan.network", error.to_string()))?;
        let eval_defaults = EvalConfig::default();
        for (key, differs) in [
            (
                "evaluation.lambda_cls",
                config.evaluation.lambda_cls != eval_defaults.lambda_cls,
            ),
            (
                "evaluation.gan_seeds",
                config.evaluation.gan_seeds != eval_defaults.gan_seeds,
            ),
            (
                "evaluation.synthetic_scope",
                config.evaluation.synthetic_scope != eval_defaults.synthetic_scope,
            ),
            (
                "evaluation.seed",
                config.evaluation.seed != eval_defaults.seed,
            ),
            (
                "evaluation.baselines",
                config.evaluation.baselines != eval_defaults.baselines,
            ),
        ] {
            if differs {
                return Err(self.invalid(
                    key,
                    "set gan.lambda_cls, gan.seeds, gan.synthetic_scope, baselines or the \
                     pipeline's seed instead",
                ));
            }
        }
        for (index, baseline) in config.baselines.iter().enumerate() {
            baseline
                .validate()
                .map_err(|error| self.invalid(format!("baselines[{index}]"), error.to_string()))?;
            if config.baselines[..index]
                .iter()
                .any(|other| other.name() == baseline.name())
            {
                return Err(self.invalid(
                    format!("baselines[{index}]"),
                    format!(
                        "a second baseline named {:?}: give one of them a \"name\"",
                        baseline.name()
                    ),
                ));
            }
        }
        self.eval_config()
            .validate()
            .map_err(|error| self.invalid("evaluation", error.to_string()))?;
        if config.threads == Some(0) {
            return Err(self.invalid(
                "threads",
                "must be at least 1 (or absent for libtorch's default)",
            ));
        }
        config
            .synth
            .validate()
            .map_err(|error| self.invalid("synth", error.to_string()))?;
        config
            .slurm
            .validate()
            .map_err(|error| self.invalid("slurm", error.to_string()))?;
        Ok(())
    }

    /// The corpus called `name`.
    pub fn corpus(&self, name: &str) -> Option<&CorpusSpec> {
        self.config
            .corpora
            .iter()
            .find(|corpus| corpus.name == name)
    }

    /// The feature stage's configuration.
    pub fn features(&self) -> FeaturesConfig {
        FeaturesConfig {
            corpora: self.config.corpora.clone(),
        }
    }

    /// The run's output directory.
    pub fn output_dir(&self) -> PathBuf {
        self.config
            .output_dir
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(&self.config.name))
    }

    /// The GAN configuration for one `lambda_cls` and generator seed (0-based), seeded from
    /// the pipeline ([`gan_seed_value`]).
    pub fn gan_config(&self, lambda_cls: f64, gan_seed: u32) -> GanConfig {
        self.config.fidelity.gan(&GanConfig {
            lambda_cls,
            seed: gan_seed_value(self.config.seed, gan_seed),
            ..self.config.gan.network.clone()
        })
    }

    /// The generator seeds every (scope, lambda_cls) trains: `0..gan.seeds`.
    pub fn gan_seeds(&self) -> std::ops::Range<u32> {
        0..self.config.gan.seeds
    }

    /// The GAN scopes the pipeline needs: one per fold of the target corpus (per-fold synthetic
    /// data) and `all` when something uses it (the cross-corpus experiment, or every fold with
    /// all-sessions synthetic data). The fold count comes from the feature stage's fold file, so
    /// that stage must have run.
    pub fn gan_scopes(&self) -> Result<Vec<Scope>, PipelineError> {
        let target = self.corpus(&self.config.roles.target).expect("validated");
        let mut scopes = Vec::new();
        if self.config.gan.synthetic_scope == SyntheticScope::PerFold
            && target.folds == FoldScheme::LeaveOneSessionOut
        {
            let path = self.feature_layout().folds(&target.name);
            let folds: Vec<emocycle_features::Fold> =
                emocycle_artifact::read_parquet_metadata(&path)
                    .and_then(|metadata| metadata.get_json("emocycle.folds", &path))
                    .map_err(|error| {
                        self.invalid(
                            "roles.target",
                            format!("{error} (run the feature stage first)"),
                        )
                    })?;
            scopes.extend(folds.iter().map(|fold| Scope::Fold(fold.number)));
        }
        // GANs of every session serve the cross-corpus experiment and all-sessions synthetic
        // data; a pipeline with neither would train them for nothing.
        if self.eval_config().cross_corpus
            || self.config.gan.synthetic_scope == SyntheticScope::AllSessions
            || scopes.is_empty()
        {
            scopes.push(Scope::All);
        }
        Ok(scopes)
    }

    /// The feature-stage files a GAN scope reads.
    pub fn gan_inputs(&self, scope: &Scope) -> StageInputs {
        let layout = self.feature_layout();
        let roles = &self.config.roles;
        let subset = scope.training_subset();
        StageInputs {
            source: layout.corpus(&roles.source),
            source_normalisation: layout.normalisation(&roles.source, "all"),
            target: layout.corpus(&roles.target),
            target_folds: layout.folds(&roles.target),
            target_normalisation: layout.normalisation(&roles.target, &subset),
        }
    }

    /// Where a GAN scope's outputs of one generator seed go.
    pub fn gan_dirs(&self, scope: &Scope, gan_seed: u32) -> ScopeDirs {
        ScopeDirs::seeded(&self.output_dir().join("gan"), scope, gan_seed)
    }

    /// The evaluation configuration, with the pipeline-wide settings filled in.
    pub fn eval_config(&self) -> EvalConfig {
        let config = &self.config;
        let evaluation = config.fidelity.evaluation(&config.evaluation);
        EvalConfig {
            lambda_cls: config.gan.lambda_cls.clone(),
            gan_seeds: config.gan.seeds,
            synthetic_scope: config.gan.synthetic_scope,
            baselines: config
                .baselines
                .iter()
                .map(|baseline| baseline.name().to_string())
                .collect(),
            seed: config.seed,
            cross_corpus: config.evaluation.cross_corpus && config.roles.cross_corpus.is_some(),
            ..evaluation
        }
    }

    /// The baseline called `name`, if the pipeline has one.
    pub fn baseline(&self, name: &str) -> Option<&BaselineConfig> {
        self.config
            .baselines
            .iter()
            .find(|baseline| baseline.name() == name)
    }

    /// What the augmentation stage needs to make `baseline`'s set of `scope`: the same target
    /// rows and statistics as the GAN of that scope, the pipeline's seed, and the output
    /// `synth/<scope>/<name>/synthetic.parquet`.
    pub fn baseline_request(&self, scope: &Scope, baseline: &BaselineConfig) -> BaselineRequest {
        BaselineRequest {
            config: baseline.clone(),
            inputs: self.gan_inputs(scope),
            scope: scope.clone(),
            seed: self.config.seed,
            output: baseline_path(&self.output_dir().join("synth"), scope, baseline.name()),
        }
    }

    /// Where the synthetic sets and the quality report go.
    pub fn synth_layout(&self) -> SynthLayout {
        SynthLayout::new(self.output_dir().join("synth"))
    }

    /// Where the feature stage writes.
    pub fn feature_layout(&self) -> FeatureLayout {
        FeatureLayout::new(self.output_dir().join("features"))
    }
}

/// Replaces every `${NAME}` with `lookup(NAME)`; an unset variable is an error naming it.
fn expand_variables(
    path: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, PipelineError> {
    let mut expanded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| PipelineError::Invalid {
            path: path.to_path_buf(),
            key: "${".to_string(),
            message: "unclosed ${ in the pipeline file".to_string(),
        })?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| PipelineError::Invalid {
            path: path.to_path_buf(),
            key: format!("${{{name}}}"),
            message: format!("the environment variable {name} is not set"),
        })?;
        // The value lands inside a JSON string: escape what JSON needs escaped.
        let quoted = serde_json::to_string(&value).expect("strings serialise");
        expanded.push_str(&quoted[1..quoted.len() - 1]);
        rest = &after[end + 1..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline_text(extra: &str) -> String {
        format!(
            r#"{{
  "name": "t",
  "seed": 7,
  "corpora": [
    {{"name": "lab", "features": "formats/smilextract.csv", "labels": "formats/labels_iemocap.csv",
      "label_map": "iemocap", "folds": "leave-one-session-out"}},
    {{"name": "src", "features": "formats/opensmile_python.csv"}}
  ],
  "roles": {{"target": "lab", "source": "src"}}{extra}
}}"#
        )
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pipeline.json")
    }

    #[test]
    fn a_valid_pipeline_resolves_paths_against_its_file() {
        let pipeline = Pipeline::from_json(&fixtures(), &pipeline_text("")).unwrap();
        assert!(
            pipeline.config.corpora[0]
                .features
                .ends_with("fixtures/formats/smilextract.csv")
        );
        assert!(pipeline.config.corpora[0].features.is_file());
        assert_eq!(pipeline.output_dir(), Path::new("runs/t"));
        assert_eq!(pipeline.config.device, DeviceChoice::Auto);
    }

    #[test]
    fn environment_variables_are_expanded_and_unset_ones_named() {
        let lookup = |name: &str| (name == "CORPUS").then(|| "/data/a \"b\".csv".to_string());
        let text = r#"{"features": "${CORPUS}"}"#;
        let expanded = expand_variables(Path::new("p.json"), text, lookup).unwrap();
        let value: serde_json::Value = serde_json::from_str(&expanded).unwrap();
        assert_eq!(value["features"], "/data/a \"b\".csv");
        let error =
            expand_variables(Path::new("p.json"), r#"{"x": "${MISSING}"}"#, lookup).unwrap_err();
        assert_eq!(
            error.to_string(),
            "p.json: ${MISSING}: the environment variable MISSING is not set"
        );
        // Pipeline::from_json expands from the process environment.
        let text =
            pipeline_text("").replace(r#""name": "t""#, r#""name": "${EMOCYCLE_TEST_UNSET}""#);
        let error = Pipeline::from_json(&fixtures(), &text).unwrap_err();
        assert!(
            error.to_string().contains("EMOCYCLE_TEST_UNSET is not set"),
            "{error}"
        );
    }

    #[test]
    fn the_shipped_pipelines_are_valid() {
        let shipped = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../pipelines")
                .join(name);
            Pipeline::load(&path).unwrap()
        };
        // The demo keeps the paper's two lambda_cls values; the sweep is the demo with the sweep.
        let demo = shipped("demo.json");
        assert_eq!(demo.config.gan.lambda_cls, [0.0, 2.0]);
        let sweep = shipped("sweep.json");
        assert_eq!(sweep.config.gan.lambda_cls, [0.0, 0.5, 1.0, 2.0, 4.0]);
        assert_eq!(sweep.config.gan.network, demo.config.gan.network);
        // The generator-seed run is the demo with three seeds.
        let mut seeds = shipped("seeds.json").config;
        assert_eq!(seeds.gan.seeds, 3);
        seeds.gan.seeds = 1;
        seeds.name = demo.config.name.clone();
        assert_eq!(seeds, demo.config);
        // paper.json needs real corpora: with the variables pointing at the demo corpus files,
        // everything but the corpus contents is checked.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus");
        let paper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/paper.json");
        let text = std::fs::read_to_string(&paper).unwrap();
        let file = |name: &str| corpus.join(name).display().to_string();
        let lookup = |name: &str| match name {
            "IEMOCAP_FEATURES" => Some(file("labelled.csv.gz")),
            "IEMOCAP_LABELS" => Some(file("labelled_labels.csv")),
            "TEDLIUM_FEATURES" => Some(file("source.csv.gz")),
            "MSP_IMPROV_FEATURES" => Some(file("crosscorpus.csv.gz")),
            "MSP_IMPROV_LABELS" => Some(file("crosscorpus_labels.csv")),
            _ => None,
        };
        let expanded = expand_variables(&paper, &text, lookup).unwrap();
        let config: PipelineConfig = serde_json::from_str(&expanded).unwrap();
        assert_eq!(
            config.gan.network,
            GanConfig::default(),
            "paper.json must keep the paper's GAN"
        );
        assert_eq!(config.gan.lambda_cls, [0.0, 2.0]);
    }

    #[test]
    fn gan_and_synth_sections_are_validated() {
        let cases = [
            (
                r#", "gan": {"network": {"lambda_cls": 1}}"#,
                "gan.network.lambda_cls",
            ),
            (r#", "gan": {"network": {"seed": 4}}"#, "gan.network.seed"),
            (r#", "gan": {"lambda_cls": []}"#, "gan.lambda_cls"),
            (r#", "gan": {"seeds": 0}"#, "gan.seeds"),
            (r#", "gan": {"grid_memory_gib": 0}"#, "gan.grid_memory_gib"),
            (r#", "gan": {"engine": "fused"}"#, "unknown variant `fused`"),
            (r#", "slurm": {"time": "soon"}"#, "slurm"),
            (
                r#", "evaluation": {"gan_seeds": 2}"#,
                "evaluation.gan_seeds",
            ),
            (r#", "gan": {"network": {"batch_size": 0}}"#, "gan.network"),
            (
                r#", "gan": {"network": {"epochs": 3}}"#,
                "unknown field `epochs`",
            ),
            (r#", "synth": {"knn_k": 0}"#, "synth"),
            (
                r#", "baselines": [{"method": "smote"}, {"method": "smote"}]"#,
                "baselines[1]",
            ),
            (
                r#", "baselines": [{"method": "smote", "k": 0}]"#,
                "baselines[0]",
            ),
            (
                r#", "baselines": [{"method": "smote", "sigma": 0.1}]"#,
                "unknown field `sigma`",
            ),
            (
                r#", "evaluation": {"baselines": ["smote"]}"#,
                "evaluation.baselines",
            ),
        ];
        for (extra, key) in cases {
            let error = Pipeline::from_json(&fixtures(), &pipeline_text(extra))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{extra}: {error}");
        }
        // Baselines alone, without any CycleGAN, are a valid experiment.
        let baselines_only = Pipeline::from_json(
            &fixtures(),
            &pipeline_text(r#", "gan": {"lambda_cls": []}, "baselines": [{"method": "smote"}]"#),
        )
        .unwrap();
        let eval = baselines_only.eval_config();
        assert!(eval.lambda_cls.is_empty());
        assert_eq!(eval.baselines, ["smote"]);
        let twice = Pipeline::from_json(
            &fixtures(),
            &pipeline_text(r#", "gan": {"lambda_cls": [2, 2]}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(
            twice.contains("gan.lambda_cls") && twice.contains("twice"),
            "{twice}"
        );
    }

    #[test]
    fn generator_seeds_reach_the_gan_and_the_evaluation() {
        let one = Pipeline::from_json(&fixtures(), &pipeline_text("")).unwrap();
        assert_eq!(one.gan_seeds(), 0..1);
        assert_eq!(one.gan_config(2.0, 0).seed, one.config.seed);
        let three =
            Pipeline::from_json(&fixtures(), &pipeline_text(r#", "gan": {"seeds": 3}"#)).unwrap();
        assert_eq!(three.gan_seeds(), 0..3);
        assert_eq!(three.eval_config().gan_seeds, 3);
        let seeds: Vec<u64> = three
            .gan_seeds()
            .map(|s| three.gan_config(0.0, s).seed)
            .collect();
        assert_eq!(seeds[0], three.config.seed);
        assert!(seeds[1] != seeds[0] && seeds[2] != seeds[1] && seeds[2] != seeds[0]);
        assert_eq!(
            three.gan_dirs(&Scope::All, 1).train(2.0),
            three.output_dir().join("gan/all/lambda_cls-2-seed-1")
        );
    }

    #[test]
    fn the_published_code_fidelity_reaches_every_stage() {
        let paper = Pipeline::from_json(&fixtures(), &pipeline_text("")).unwrap();
        let code = Pipeline::from_json(
            &fixtures(),
            &pipeline_text(r#", "fidelity": "published-code""#),
        )
        .unwrap();
        assert_eq!(paper.config.fidelity, Fidelity::Paper);
        let (a, b) = (paper.gan_config(2.0, 0), code.gan_config(2.0, 0));
        assert_eq!(b.train_epochs, a.train_epochs + 1);
        assert_eq!(b.pretrain_epochs, a.pretrain_epochs + 1);
        assert_eq!((b.lambda_cls, b.seed), (a.lambda_cls, a.seed));
        let (a, b) = (paper.eval_config(), code.eval_config());
        assert_eq!(b.within.real.epochs, a.within.real.epochs + 1);
        assert!(b.within.real.drop_last_batch && !a.within.real.drop_last_batch);
        assert_eq!(b.within.real_syn.learning_rate, 1e-5);
        assert_eq!(
            (b.seed, b.lambda_cls.clone()),
            (a.seed, a.lambda_cls.clone())
        );
        let error = Pipeline::from_json(&fixtures(), &pipeline_text(r#", "fidelity": "code""#))
            .unwrap_err()
            .to_string();
        assert!(error.contains("published-code"), "{error}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = Pipeline::from_json(&fixtures(), &pipeline_text(r#", "sed": 3"#))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `sed`"), "{error}");
        assert!(error.contains("pipeline.json"), "{error}");
    }

    #[test]
    fn impossible_values_are_named() {
        let text = pipeline_text("").replace(r#""source": "src""#, r#""source": "nope""#);
        let error = Pipeline::from_json(&fixtures(), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("roles.source: no corpus is named \"nope\""),
            "{error}"
        );

        let text = pipeline_text("").replace("formats/opensmile_python.csv", "formats/missing.csv");
        let error = Pipeline::from_json(&fixtures(), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("corpora[1]") && error.contains("no such file"),
            "{error}"
        );

        let error = Pipeline::from_json(&fixtures(), &pipeline_text(r#", "device": "gpu""#))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown device"), "{error}");
    }
}
