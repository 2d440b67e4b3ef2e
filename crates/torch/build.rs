//! Makes every binary and test binary of the including package find libtorch at run time.
//!
//! torch-sys links libtorch dynamically but sets no rpath, so without this the binaries fail to
//! start unless the user exports `LD_LIBRARY_PATH`. The linker's as-needed default would also
//! drop `libtorch_cuda.so` (nothing references it by symbol), which makes CUDA read as
//! unavailable on a GPU machine; linking `-ltorch` with `--no-as-needed` keeps it.
//!
//! Every crate whose own tests or binaries run libtorch uses this file as its build script and
//! depends on `torch-sys` directly: cargo only hands `DEP_TCH_LIBTORCH_LIB` to direct dependents.
//!
//! It also sets `EMOCYCLE_CODE_FINGERPRINT`, the code part of a stage's freshness keys (see the
//! `emocycle-fingerprint` crate).

fn main() {
    // A relative `build.rs` would name the including package's own (absent) file, which cargo
    // takes as changed on every build: every including crate would recompile every time.
    println!("cargo:rerun-if-changed={}", this_script().display());
    emocycle_fingerprint::emit();
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        // LIBTORCH_STATIC or an unusual platform: nothing to add.
        return;
    };
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib_dir}");
        println!("cargo:rustc-link-arg=-ltorch");
    } else if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}

/// This file, from the including package: its own `build.rs` (the torch crate) or the shared
/// `../torch/build.rs`.
fn this_script() -> std::path::PathBuf {
    let manifest_dir =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let own = manifest_dir.join("build.rs");
    if own.is_file() {
        own
    } else {
        manifest_dir.join("../torch/build.rs")
    }
}
