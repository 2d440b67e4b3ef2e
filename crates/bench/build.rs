//! crates/torch/build.rs, but for the `emocycle-bench` binary only.
//!
//! That script makes binaries find libtorch (an rpath) and keeps `libtorch_cuda.so` linked
//! (`--no-as-needed -ltorch`) so CUDA is seen on a GPU machine. It does so for every binary of a
//! package, and loading libtorch with its CUDA libraries costs a process about half a gigabyte
//! of resident memory before it does anything. The ingestion child `emocycle-bench-ingest`
//! measures the feature stage's own peak memory, so it must not load libtorch: it gets none of
//! these arguments and, using no tch symbol, links no libtorch at all.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let bin = "emocycle-bench";
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => {
            for arg in [
                format!("-Wl,-rpath,{lib_dir}"),
                "-Wl,--no-as-needed".to_string(),
                format!("-L{lib_dir}"),
                "-ltorch".to_string(),
            ] {
                println!("cargo:rustc-link-arg-bin={bin}={arg}");
            }
        }
        Ok("macos") => println!("cargo:rustc-link-arg-bin={bin}=-Wl,-rpath,{lib_dir}"),
        _ => {}
    }
}
