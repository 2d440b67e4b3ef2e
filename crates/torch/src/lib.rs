//! libtorch plumbing shared by every emocycle stage that runs a model.
//!
//! Reads and writes no files. It turns the user's `--device auto|cpu|cuda[:N]` choice into a
//! [`tch::Device`], seeds libtorch's generators, and (through this crate's `build.rs`, which the
//! model crates reuse) makes binaries find libtorch at run time without any environment variable.
//!
//! It also holds the one network and the one optimiser every model of the project is made of: the
//! GAN stage's CycleGANs and classifier, the evaluation's classifier and the conditional-GAN
//! baseline are all [`MlpStack`]s (affine layers, LeakyReLU, inverted dropout) trained by
//! [`Adam`] (TensorFlow 1.x's update, as the published code, run as PyTorch's fused kernel).

mod adam;
mod mlp;

pub use adam::{Adam, AdamPart, AdamStep};
pub use emocycle_config::device::{DeviceChoice, UnknownDevice};
pub use mlp::{Acts, Init, Leaf, Linear, MlpStack, bce_elementwise};

/// Errors from device selection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// CUDA was asked for but libtorch sees fewer devices.
    #[error("device cuda:{requested} was requested but libtorch sees {available} CUDA device(s)")]
    CudaUnavailable {
        /// The requested index.
        requested: usize,
        /// How many devices libtorch reports.
        available: usize,
    },
}

/// Turns the user's [`DeviceChoice`] (a setting, defined without libtorch) into a libtorch device.
pub trait ResolveDevice {
    /// The libtorch device this choice means on this machine.
    fn resolve(self) -> Result<tch::Device, DeviceError>;
}

impl ResolveDevice for DeviceChoice {
    fn resolve(self) -> Result<tch::Device, DeviceError> {
        resolve_device(self)
    }
}

fn resolve_device(choice: DeviceChoice) -> Result<tch::Device, DeviceError> {
    let available = if tch::Cuda::is_available() {
        usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
    } else {
        0
    };
    let device = match choice {
        DeviceChoice::Cpu => tch::Device::Cpu,
        DeviceChoice::Auto if available > 0 => tch::Device::Cuda(0),
        DeviceChoice::Auto => tch::Device::Cpu,
        DeviceChoice::Cuda(requested) if requested < available => tch::Device::Cuda(requested),
        DeviceChoice::Cuda(requested) => {
            return Err(DeviceError::CudaUnavailable {
                requested,
                available,
            });
        }
    };
    tracing::debug!(%choice, ?device, "device resolved");
    Ok(device)
}

/// A short, stable name for a resolved device (`cpu`, `cuda:0`), for manifests and reports.
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(index) => format!("cuda:{index}"),
        _ => "cpu".to_string(),
    }
}

/// Keeps memory that libtorch frees for the process's next allocation instead of returning it
/// to the operating system. Training allocates and frees the same multi-megabyte gradient and
/// activation buffers every step; glibc's defaults give large blocks back (`munmap`, heap
/// trimming) and the next step page-faults them in again, which cost about 7% of a GAN
/// iteration. With blocks up to 32 MiB served from the heap and no trimming below 1 GiB, the
/// paper-size iteration gets about 7% faster on the 2-core CPU (docs/benchmarks.md's history). The price
/// is a resident size that stays at its peak. Call it once, first thing in `main`; elsewhere
/// than glibc it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt takes no pointers and only sets two allocator parameters, under glibc's
    // own arena locks; any value is valid (a rejected one leaves the default).
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// This process's peak resident memory so far, bytes, from /proc/self/status (Linux only).
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Sets the calling thread's libtorch intra-op thread count so that it stays set.
///
/// libtorch keeps the count per OS thread, and the first time a thread asks for it (any
/// parallel kernel does) libtorch gives it the process-wide value: the last count any thread
/// set. A count set before that first use is then overwritten if another thread has set a
/// different one in between. Asking first makes the first-use set-up happen before the count is
/// set.
pub fn set_libtorch_threads(threads: i32) {
    let _ = tch::get_num_threads();
    tch::set_num_threads(threads.max(1));
}

/// Seeds every libtorch generator (CPU and all CUDA devices) from one number.
pub fn seed_everything(seed: u64) {
    // libtorch takes the seed as i64; the bit pattern is what matters.
    tch::manual_seed(i64::from_ne_bytes(seed.to_ne_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_resolves_and_runs_a_real_libtorch_operation() {
        let device = DeviceChoice::Cpu.resolve().unwrap();
        assert_eq!(device, tch::Device::Cpu);
        let a = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let product = a.matmul(&a);
        let values: Vec<f32> = Vec::try_from(product.flatten(0, -1)).unwrap();
        assert_eq!(values, vec![7.0, 10.0, 15.0, 22.0]);
    }

    #[test]
    fn auto_never_fails_and_cuda_beyond_the_count_is_refused() {
        let device = DeviceChoice::Auto.resolve().unwrap();
        if !tch::Cuda::is_available() {
            assert_eq!(device, tch::Device::Cpu);
        }
        let err = DeviceChoice::Cuda(1000).resolve().unwrap_err();
        assert!(matches!(
            err,
            DeviceError::CudaUnavailable {
                requested: 1000,
                ..
            }
        ));
    }

    #[test]
    fn same_seed_gives_the_same_random_tensor() {
        seed_everything(7);
        let first = tch::Tensor::randn([16], (tch::Kind::Float, tch::Device::Cpu));
        seed_everything(7);
        let second = tch::Tensor::randn([16], (tch::Kind::Float, tch::Device::Cpu));
        assert!(first.equal(&second));
    }
}
