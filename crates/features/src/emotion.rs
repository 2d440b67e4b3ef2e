use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four emotion classes, in the paper's order (also the GAN's class index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    /// Index 0.
    Angry,
    /// Index 1 (IEMOCAP's "excited" is merged into it).
    Happy,
    /// Index 2.
    Neutral,
    /// Index 3.
    Sad,
}

impl Emotion {
    /// All four, in class-index order.
    pub const ALL: [Emotion; 4] = [
        Emotion::Angry,
        Emotion::Happy,
        Emotion::Neutral,
        Emotion::Sad,
    ];

    /// The class index (0 angry, 1 happy, 2 neutral, 3 sad).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The emotion of a class index.
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// The name written in artifacts (`angry`, `happy`, `neutral`, `sad`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Angry => "angry",
            Self::Happy => "happy",
            Self::Neutral => "neutral",
            Self::Sad => "sad",
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Emotion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|emotion| emotion.as_str() == text)
            .ok_or_else(|| {
                format!("unknown emotion {text:?}: expected angry, happy, neutral or sad")
            })
    }
}

/// How a corpus's own label codes map onto the four emotions. Codes not in the map belong to
/// other classes: those utterances are dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelMap {
    /// IEMOCAP codes: `ang`, `hap`, `exc` (merged into happy), `neu`, `sad`.
    Iemocap,
    /// MSP-IMPROV codes: `A`, `H`, `N`, `S`.
    MspImprov,
    /// The emotion names themselves: `angry`, `happy`, `neutral`, `sad`.
    Names,
    /// Any code-to-emotion table, e.g. `{"anger": "angry", "joy": "happy", ...}`.
    Custom(BTreeMap<String, Emotion>),
}

impl LabelMap {
    /// The emotion a code stands for, or `None` for codes outside the four classes.
    /// Surrounding whitespace is ignored; built-in maps also ignore case.
    pub fn map(&self, code: &str) -> Option<Emotion> {
        let code = code.trim();
        match self {
            Self::Iemocap => match code.to_ascii_lowercase().as_str() {
                "ang" => Some(Emotion::Angry),
                "hap" | "exc" => Some(Emotion::Happy),
                "neu" => Some(Emotion::Neutral),
                "sad" => Some(Emotion::Sad),
                _ => None,
            },
            Self::MspImprov => match code.to_ascii_uppercase().as_str() {
                "A" => Some(Emotion::Angry),
                "H" => Some(Emotion::Happy),
                "N" => Some(Emotion::Neutral),
                "S" => Some(Emotion::Sad),
                _ => None,
            },
            Self::Names => code.to_ascii_lowercase().parse().ok(),
            Self::Custom(table) => table.get(code).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iemocap_merges_excited_into_happy_and_drops_other_classes() {
        let map = LabelMap::Iemocap;
        assert_eq!(map.map("exc"), Some(Emotion::Happy));
        assert_eq!(map.map("hap"), Some(Emotion::Happy));
        assert_eq!(map.map(" ANG "), Some(Emotion::Angry));
        assert_eq!(map.map("fru"), None);
        assert_eq!(map.map("xxx"), None);
    }

    #[test]
    fn msp_improv_and_custom_maps() {
        assert_eq!(LabelMap::MspImprov.map("s"), Some(Emotion::Sad));
        assert_eq!(LabelMap::MspImprov.map("O"), None);
        let custom: LabelMap =
            serde_json::from_str(r#"{"custom": {"joy": "happy", "rage": "angry"}}"#).unwrap();
        assert_eq!(custom.map("joy"), Some(Emotion::Happy));
        assert_eq!(custom.map("fear"), None);
        let named: LabelMap = serde_json::from_str(r#""msp-improv""#).unwrap();
        assert_eq!(named, LabelMap::MspImprov);
    }

    #[test]
    fn class_indices_follow_the_paper() {
        let indices: Vec<_> = Emotion::ALL.iter().map(|e| e.index()).collect();
        assert_eq!(indices, [0, 1, 2, 3]);
        assert_eq!(Emotion::from_index(3), Some(Emotion::Sad));
        assert_eq!("neutral".parse(), Ok(Emotion::Neutral));
    }
}
