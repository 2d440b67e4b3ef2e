//! Sets `EMOCYCLE_CODE_FINGERPRINT`, the code part of the feature stage's freshness keys.

fn main() {
    emocycle_fingerprint::emit();
}
