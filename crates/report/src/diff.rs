//! Key-by-key differences between two configurations serialised to JSON.

use std::fmt;

use serde_json::Value;

/// One setting whose value in a run differs from the reference (the paper's).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigChange {
    /// Dotted key below the prefix given to [`config_diff`] (`gan.network.batch_size`).
    pub key: String,
    /// The reference value; `None` when the key is absent there.
    pub paper: Option<Value>,
    /// This run's value; `None` when the key is absent there.
    pub run: Option<Value>,
}

impl fmt::Display for ConfigChange {
    /// `key: paper -> run`, values as compact JSON, `(absent)` for a missing side.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |value: &Option<Value>| {
            value
                .as_ref()
                .map_or("(absent)".to_string(), Value::to_string)
        };
        write!(
            f,
            "{}: {} -> {}",
            self.key,
            show(&self.paper),
            show(&self.run)
        )
    }
}

/// Every leaf where `run` differs from `paper`, recursing through objects (keys joined with
/// `.` below `prefix`); arrays and scalars are compared whole, numbers by value so that `1`
/// and `1.0` are equal. Keys present on one side only are reported with the other side
/// `None`. The order is the objects' key order, `paper`'s keys first.
pub fn config_diff(prefix: &str, paper: &Value, run: &Value) -> Vec<ConfigChange> {
    let mut changes = Vec::new();
    walk(prefix, paper, run, &mut changes);
    changes
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(key: &str, paper: &Value, run: &Value, changes: &mut Vec<ConfigChange>) {
    match (paper, run) {
        (Value::Object(paper), Value::Object(run)) => {
            for (name, paper_value) in paper {
                match run.get(name) {
                    Some(run_value) => walk(&join(key, name), paper_value, run_value, changes),
                    None => changes.push(ConfigChange {
                        key: join(key, name),
                        paper: Some(paper_value.clone()),
                        run: None,
                    }),
                }
            }
            for (name, run_value) in run {
                if !paper.contains_key(name) {
                    changes.push(ConfigChange {
                        key: join(key, name),
                        paper: None,
                        run: Some(run_value.clone()),
                    });
                }
            }
        }
        _ if same(paper, run) => {}
        _ => changes.push(ConfigChange {
            key: key.to_string(),
            paper: Some(paper.clone()),
            run: Some(run.clone()),
        }),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.get(key).is_some_and(|other| same(value, other)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_changes_are_listed_by_dotted_key() {
        let paper = json!({
            "epochs": 70,
            "rate": 0.5,
            "hidden": [100, 100],
            "within": {"real": {"dropout": 0.2, "batch": 64}, "syn": {"dropout": 0.5}},
            "gone": true,
        });
        let run = json!({
            "epochs": 70.0,
            "rate": 0.25,
            "hidden": [100, 100],
            "within": {"real": {"dropout": 0.2, "batch": 16}, "syn": {"dropout": 0.5}},
            "new": "x",
        });
        let changes = config_diff("evaluation", &paper, &run);
        let mut lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "evaluation.gone: true -> (absent)",
                "evaluation.new: (absent) -> \"x\"",
                "evaluation.rate: 0.5 -> 0.25",
                "evaluation.within.real.batch: 64 -> 16",
            ]
        );
        let batch = changes
            .iter()
            .find(|c| c.key == "evaluation.within.real.batch")
            .unwrap();
        assert_eq!(
            (batch.paper.clone(), batch.run.clone()),
            (Some(json!(64)), Some(json!(16)))
        );
    }

    #[test]
    fn arrays_compare_whole_and_equal_configs_have_no_changes() {
        let changes = config_diff("", &json!({"h": [1, 2]}), &json!({"h": [1, 2, 3]}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to_string(), "h: [1,2] -> [1,2,3]");
        let value = json!({"a": {"b": [1, {"c": 2}]}, "d": null});
        assert!(config_diff("x", &value, &value).is_empty());
        // A leaf at the top level is named by the prefix alone.
        assert_eq!(config_diff("seed", &json!(1), &json!(2))[0].key, "seed");
    }
}
