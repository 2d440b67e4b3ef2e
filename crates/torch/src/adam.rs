//! The one Adam of emocycle, exactly as TensorFlow 1.10's `tf.train.AdamOptimizer` applies it, on plain tensors, so
//! its state can be checkpointed and every update happens in place.
//!
//! For step t (1-based) with gradient g:
//!
//! ```text
//! lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
//! m    = m + (g - m) * (1 - beta1)          (= beta1 m + (1 - beta1) g)
//! v    = v + (g^2 - v) * (1 - beta2)        (= beta2 v + (1 - beta2) g^2)
//! p    = p - lr_t * m / (sqrt(v) + eps)
//! ```
//!
//! eps is TF's "epsilon hat": added to sqrt(v) after the bias correction has been folded into
//! lr_t, unlike PyTorch's Adam. lr_t is computed in f64 from exact powers; TF keeps running
//! float32 products of the betas, which differ in the last bits only.
//!
//! The update runs as PyTorch's fused Adam kernel (`torch._fused_adam_`: one pass reads the
//! parameter, gradient and both moments and writes the three back), which libtorch has but tch
//! does not bind; it is called through a tiny TorchScript module (`assets/fused_adam.pt`, made
//! by `tools/torch/fused_adam.py`). PyTorch's form, `p -= lr / (1 - b1^t) * m / (sqrt(v) /
//! sqrt(1 - b2^t) + eps')`, is TF's exactly when `eps' = eps / sqrt(1 - b2^t)`, which is what
//! each step passes. On the 2-core CPU it is 3.6x faster than separate element-wise passes
//! (19 ms instead of 69 ms for 33 M parameters).

use std::collections::HashMap;
use std::sync::OnceLock;

use tch::{CModule, IValue, Kind, Tensor};

use crate::Leaf;

/// One Adam optimiser over a list of parameters.
pub struct Adam {
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    step: i64,
    leaves: Vec<Leaf>,
    state: AdamPart,
}

/// The parameters, moments and step counters of some of an optimiser's parameters, aliasing the
/// optimiser's own tensors, so that threads can update disjoint parts of one step at once.
pub struct AdamPart {
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// The fused kernel's step counters (t of the bias corrections), one float scalar per
    /// parameter on its device, as PyTorch's optimiser keeps them; set before each update.
    counters: Vec<Tensor>,
}

/// The scalars of one optimiser step, shared by every [`AdamPart`] of it.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    step: i64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    /// PyTorch's eps for this step (TF's epsilon hat moved inside the bias correction).
    epsilon: f64,
}

/// The fused-Adam TorchScript module, loaded once per process.
fn fused_adam() -> &'static CModule {
    static MODULE: OnceLock<CModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let mut bytes: &[u8] = include_bytes!("../assets/fused_adam.pt");
        // The file is part of the binary and made for this libtorch: failing to load it is a
        // build defect, not a user error.
        CModule::load_data(&mut bytes).expect("the embedded fused-Adam TorchScript module loads")
    })
}

impl Adam {
    /// An optimiser of `leaves` with zero moments; `epsilon` is TF's epsilon hat.
    pub fn new(leaves: Vec<Leaf>, beta1: f64, beta2: f64, epsilon: f64) -> Self {
        let zeros = |leaves: &[Leaf]| -> Vec<Tensor> {
            leaves
                .iter()
                .map(|l| l.tensor.detach().zeros_like())
                .collect()
        };
        let counters = leaves
            .iter()
            .map(|leaf| Tensor::zeros([], (Kind::Float, leaf.tensor.device())))
            .collect();
        let state = AdamPart {
            params: leaves.iter().map(|l| l.tensor.shallow_clone()).collect(),
            m: zeros(&leaves),
            v: zeros(&leaves),
            counters,
        };
        Self {
            beta1,
            beta2,
            epsilon,
            step: 0,
            leaves,
            state,
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// One update of every parameter from its `.grad()`. A parameter without a gradient counts
    /// as having a zero gradient, as TF's dense update would see it.
    #[cfg(test)]
    pub(crate) fn step(&mut self, lr: f64) {
        let grads: Vec<Tensor> = self.leaves.iter().map(|leaf| leaf.tensor.grad()).collect();
        let step = self.begin_step(lr);
        self.state.apply(&grads, step);
    }

    /// Differentiates `loss` with respect to this optimiser's parameters and updates them.
    ///
    /// The gradients go straight from autograd to the update: nothing is accumulated into
    /// `.grad`, so there is nothing to zero before and no `grad += new` pass after, and autograd
    /// computes no gradient of any other parameter (a frozen discriminator's weights, say).
    /// Together that is four passes over every parameter per step fewer than
    /// `zero_grad` + `backward` + an update from `.grad`.
    pub fn minimise(&mut self, loss: &Tensor, lr: f64) {
        let step = self.begin_step(lr);
        self.state.minimise(loss, step);
    }

    /// One update from `grads`, given in the order of the optimiser's leaves (computed by the
    /// caller, say as slices of a larger model's gradients).
    pub fn apply(&mut self, grads: &[Tensor], lr: f64) {
        let step = self.begin_step(lr);
        self.state.apply(grads, step);
    }

    /// How many parameter tensors this optimiser updates.
    pub fn parameter_tensors(&self) -> usize {
        self.leaves.len()
    }

    /// Counts a new step and returns its scalars; the caller then updates every parameter
    /// exactly once through [`AdamPart`]s.
    pub fn begin_step(&mut self, lr: f64) -> AdamStep {
        self.step += 1;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        AdamStep {
            step: self.step,
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            // TF's epsilon hat, moved inside PyTorch's bias-corrected denominator.
            epsilon: self.epsilon / (1.0 - self.beta2.powi(t)).sqrt(),
        }
    }

    /// The part of this optimiser that holds `params` (the same tensors as its leaves, in any
    /// order); its updates change this optimiser's state.
    ///
    /// # Panics
    /// If a tensor is not one of this optimiser's parameters.
    pub fn part<'a>(&self, params: impl IntoIterator<Item = &'a Tensor>) -> AdamPart {
        let indices: Vec<usize> = params
            .into_iter()
            .map(|param| {
                self.state
                    .params
                    .iter()
                    .position(|own| own.data_ptr() == param.data_ptr())
                    .expect("a part holds parameters of its optimiser only")
            })
            .collect();
        let pick = |all: &[Tensor]| -> Vec<Tensor> {
            indices.iter().map(|&i| all[i].shallow_clone()).collect()
        };
        AdamPart {
            params: pick(&self.state.params),
            m: pick(&self.state.m),
            v: pick(&self.state.v),
            counters: pick(&self.state.counters),
        }
    }

    /// The state as named CPU tensors: `{prefix}.step` (int64 `[1]`), `{prefix}.m.<param>` and
    /// `{prefix}.v.<param>`.
    pub fn export(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}.step"), Tensor::from_slice(&[self.step]))];
        for (index, leaf) in self.leaves.iter().enumerate() {
            out.extend(leaf.export(&format!("{prefix}.m."), &self.state.m[index]));
            out.extend(leaf.export(&format!("{prefix}.v."), &self.state.v[index]));
        }
        out
    }

    /// Restores the state written by [`Adam::export`].
    pub fn import(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<(), String> {
        let key = format!("{prefix}.step");
        let step = tensors
            .get(&key)
            .ok_or(format!("tensor {key} is missing"))?;
        if step.kind() != Kind::Int64 || step.numel() != 1 {
            return Err(format!("tensor {key} is not one int64"));
        }
        self.step = step.int64_value(&[0]);
        for (index, leaf) in self.leaves.iter().enumerate() {
            leaf.import(&format!("{prefix}.m."), tensors, &self.state.m[index])?;
            leaf.import(&format!("{prefix}.v."), tensors, &self.state.v[index])?;
        }
        Ok(())
    }
}

impl AdamPart {
    /// The parameters, as autograd leaves.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Differentiates `loss` with respect to this part's parameters and updates them (see
    /// [`Adam::minimise`]).
    pub fn minimise(&self, loss: &Tensor, step: AdamStep) {
        let inputs: Vec<&Tensor> = self.params.iter().collect();
        let grads = Tensor::run_backward(&[loss], &inputs, false, false);
        self.apply(&grads, step);
    }

    /// Applies one update from `grads`, given in the order of [`AdamPart::params`].
    pub fn apply(&self, grads: &[Tensor], step: AdamStep) {
        let list = |tensors: &[Tensor]| {
            IValue::TensorList(tensors.iter().map(Tensor::shallow_clone).collect())
        };
        // A parameter without a gradient counts as having a zero gradient, as TF's dense
        // update would see it. The fused kernel reads every tensor as if it were contiguous
        // (PyTorch 2.11 on the CPU does not check): autograd hands a batched layer's weight
        // its gradient transposed, which the kernel would silently apply to the wrong elements.
        let grads: Vec<Tensor> = grads
            .iter()
            .zip(&self.params)
            .map(|(grad, param)| {
                if grad.defined() {
                    grad.contiguous()
                } else {
                    param.detach().zeros_like()
                }
            })
            .collect();
        let params: Vec<Tensor> = self.params.iter().map(Tensor::detach).collect();
        tch::no_grad(|| {
            for counter in &self.counters {
                let _ = counter.shallow_clone().fill_(step.step as f64);
            }
            fused_adam()
                .method_is(
                    "step",
                    &[
                        list(&params),
                        list(&grads),
                        list(&self.m),
                        list(&self.v),
                        list(&self.counters),
                        IValue::Double(step.lr),
                        IValue::Double(step.beta1),
                        IValue::Double(step.beta2),
                        IValue::Double(step.epsilon),
                    ],
                )
                .expect("the fused Adam kernel accepts float parameters of one device");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_parameter(value: f32) -> (Tensor, Adam) {
        let p = Tensor::from_slice(&[value]).set_requires_grad(true);
        let leaf = Leaf {
            tensor: p.shallow_clone(),
            names: vec!["p".into()],
            stacked: false,
        };
        (p, Adam::new(vec![leaf], 0.9, 0.999, 1e-8))
    }

    fn set_gradient(p: &Tensor, slope: f64) {
        let mut p = p.shallow_clone();
        p.zero_grad();
        (&p * slope).sum(Kind::Float).backward();
    }

    #[test]
    fn matches_tensorflow_adam_by_hand_for_two_steps() {
        let (p, mut adam) = single_parameter(1.0);
        // Step 1, g = 0.5: m = 0.05, v = 0.00025, lr_t = 0.1 * sqrt(0.001) / 0.1.
        set_gradient(&p, 0.5);
        adam.step(0.1);
        let lr1 = 0.1 * (1.0f64 - 0.999).sqrt() / (1.0 - 0.9);
        let p1 = 1.0 - lr1 * 0.05 / (0.00025f64.sqrt() + 1e-8);
        assert!((p1 - 0.9).abs() < 1e-6, "hand value {p1}");
        assert!((p.double_value(&[0]) - p1).abs() < 1e-6);
        // Step 2, g = -1: m = -0.055, v = 0.00124975, lr_t = 0.1 * sqrt(1 - 0.999^2) / (1 - 0.81).
        set_gradient(&p, -1.0);
        adam.step(0.1);
        let lr2 = 0.1 * (1.0f64 - 0.999 * 0.999).sqrt() / (1.0 - 0.81);
        let p2 = p1 - lr2 * -0.055 / (0.001_249_75f64.sqrt() + 1e-8);
        assert!((p2 - 0.936_611).abs() < 1e-5, "hand value {p2}");
        assert!((p.double_value(&[0]) - p2).abs() < 1e-6);
        assert_eq!(adam.steps(), 2);
    }

    #[test]
    fn an_update_in_parts_equals_the_whole_update() {
        let make = || {
            let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
            let q = Tensor::from_slice(&[0.25f32, 3.0]).set_requires_grad(true);
            let leaves = [(&p, "p"), (&q, "q")]
                .iter()
                .map(|(t, name)| Leaf {
                    tensor: t.shallow_clone(),
                    names: vec![(*name).into()],
                    stacked: false,
                })
                .collect();
            (p, q, Adam::new(leaves, 0.9, 0.999, 1e-8))
        };
        let loss = |p: &Tensor, q: &Tensor| (p * p).sum(Kind::Float) + (q * 3.0).sum(Kind::Float);
        let (p1, q1, mut whole) = make();
        let (p2, q2, mut split) = make();
        let q_part = split.part([&q2]);
        let p_part = split.part([&p2]);
        for _ in 0..3 {
            whole.minimise(&loss(&p1, &q1), 0.1);
            let step = split.begin_step(0.1);
            q_part.minimise(&(&q2 * 3.0).sum(Kind::Float), step);
            p_part.minimise(&(&p2 * &p2).sum(Kind::Float), step);
        }
        assert!(p1.equal(&p2) && q1.equal(&q2));
        assert!(!p1.equal(&Tensor::from_slice(&[1.0f32, -2.0, 0.5])));
        assert_eq!(split.steps(), 3);
        let exported = |adam: &Adam| -> Vec<(String, Tensor)> { adam.export("a") };
        for ((name, a), (_, b)) in exported(&whole).iter().zip(&exported(&split)) {
            assert!(a.equal(b), "{name}");
        }
    }

    #[test]
    fn a_strided_gradient_updates_the_elements_it_belongs_to() {
        let make = || {
            let p =
                Tensor::zeros([2, 3, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            let leaf = Leaf {
                tensor: p.shallow_clone(),
                names: vec!["a".into(), "b".into()],
                stacked: true,
            };
            (p, Adam::new(vec![leaf], 0.9, 0.999, 1e-8))
        };
        // Laid out [2, 4, 3], seen as [2, 3, 4]: the strides of a batched weight's gradient.
        let strided = Tensor::arange(24, (Kind::Float, tch::Device::Cpu))
            .view([2, 4, 3])
            .transpose(1, 2)
            - 11.5;
        assert!(!strided.is_contiguous());
        let (p, mut adam) = make();
        adam.apply(&[strided.shallow_clone()], 0.1);
        let (q, mut reference) = make();
        reference.apply(&[strided.contiguous()], 0.1);
        assert!(p.equal(&q));
        // Step 1 moves every element by lr against the sign of its own gradient.
        let expected = strided.sign() * -0.1;
        assert!((p.detach() - expected).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn state_round_trips_through_export() {
        let (p, mut adam) = single_parameter(1.0);
        set_gradient(&p, 0.5);
        adam.step(0.1);
        let exported: HashMap<String, Tensor> = adam.export("adam.x").into_iter().collect();
        assert!(exported.contains_key("adam.x.m.p") && exported.contains_key("adam.x.v.p"));
        let (q, mut restored) = single_parameter(0.0);
        restored.import("adam.x", &exported).unwrap();
        assert_eq!(restored.steps(), 1);
        tch::no_grad(|| q.shallow_clone().copy_(&p.detach()));
        set_gradient(&p, -1.0);
        adam.step(0.1);
        set_gradient(&q, -1.0);
        restored.step(0.1);
        assert!(q.equal(&p));
    }
}
