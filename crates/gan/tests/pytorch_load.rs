//! PyTorch loads emocycle's weights directly, and they mean what the crate docs say: a
//! generator rebuilt from `nn.Linear` layers with LeakyReLU 0.2 computes what `generate` does.
//!
//! Needs the set-up's virtualenv (`EMOCYCLE_TORCH_VENV`, exported by `scripts/env.sh`, which
//! `just test` and CI use); built against a user's own `LIBTORCH` there may be no Python, and
//! the test says so and returns.

use std::process::Command;

use emocycle_gan::{CycleGanModel, GanConfig, ModelLayout};
use tch::{Device, Kind, Tensor};

const LOADER: &str = r#"
import json, sys, torch
from safetensors.torch import load_file

tensors = load_file(sys.argv[1])
features = int(sys.argv[2])

class Mlp(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.nn.functional.leaky_relu(layer(x), 0.2)
        return self.layers[-1](x)

generator = Mlp([features, 8, 4, 8, features])
prefix = "g.2."
generator.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
x = torch.arange(3 * features, dtype=torch.float32).reshape(3, features) / (3 * features)
with torch.no_grad():
    print(json.dumps(generator(x).flatten().tolist()))
"#;

#[test]
fn pytorch_loads_a_generator_and_computes_the_same_outputs() {
    let Some(venv) = std::env::var_os("EMOCYCLE_TORCH_VENV") else {
        eprintln!(
            "EMOCYCLE_TORCH_VENV is not set (not run through scripts/env.sh): nothing to compare with"
        );
        return;
    };
    let python = std::path::Path::new(&venv).join("bin/python");
    let features = 5i64;
    let config = GanConfig {
        generator_hidden: vec![8, 4, 8],
        discriminator_hidden: vec![6, 6],
        classifier_hidden: vec![4, 4],
        seed: 11,
        ..GanConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    for layout in [ModelLayout::Separate, ModelLayout::Batched] {
        let model =
            CycleGanModel::new_initialised(&config, 4, features, layout, Device::Cpu).unwrap();
        model.save_weights(&path).unwrap();
        let x = Tensor::arange(3 * features, (Kind::Float, Device::Cpu)).reshape([3, features])
            / (3 * features) as f64;
        let ours: Vec<f32> = Vec::try_from(model.generate(2, &x).unwrap().flatten(0, -1)).unwrap();

        let output = Command::new(&python)
            .args(["-c", LOADER, path.to_str().unwrap(), &features.to_string()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: Vec<f32> = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(theirs.len(), ours.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "{layout:?}: ours {a} vs PyTorch {b}"
            );
        }
    }
}
