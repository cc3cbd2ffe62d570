//! Generates `sys` (bindgen over the installed DPDK 22.11 headers) and compiles
//! `src/shim.c`, which turns the fast-path `static inline` functions into real
//! symbols. Both sides get the raw `pkg-config --cflags libdpdk` tokens: they
//! carry `-include rte_config.h` and `-march=corei7`, and the inline bodies
//! (`rte_memcpy` in particular) do not compile without at least SSSE3.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Extra define both sides need: a few ethdev/mbuf helpers the safe layer
/// uses are still tagged experimental in 22.11.
const EXPERIMENTAL: &str = "-DALLOW_EXPERIMENTAL_API";

fn main() {
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = dpdk_cflags();

    // Link flags (and the library search path) come from the pkg-config
    // crate, which also prints the cargo metadata for them. PMDs are not
    // linked: EAL dlopens them from Debian's plugin directory at init.
    pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("libdpdk not found by pkg-config (install libdpdk-dev): {e}"));

    let src = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("src");

    let mut shim = cc::Build::new();
    shim.file(src.join("shim.c"))
        .include(&src)
        // The shim is the fast path even in debug builds of the Rust side.
        .opt_level(3)
        .warnings(false)
        .flag(EXPERIMENTAL);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("pias_dpdk_shim");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let bindings = bindgen::Builder::default()
        .header(src.join("wrapper.h").to_string_lossy())
        .clang_args(&cflags)
        .clang_arg(EXPERIMENTAL)
        .clang_arg(format!("-I{}", src.display()))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_.*|pias_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|RING_F_.*|SOCKET_ID_ANY|LCORE_ID_ANY")
        // The RSS and offload masks are built with RTE_BIT64(), a
        // function-like macro bindgen's own evaluator cannot expand.
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(&out)
        // C enums as plain constants: a value the headers do not list (a
        // newer PMD, a flag combination) must not be UB on the Rust side.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        // Packed protocol headers pulled in by rte_flow.h whose bitfield
        // unions carry an alignment (Rust refuses that inside a packed
        // struct) and whose derived Debug would read unaligned fields. The
        // proxy parses headers itself; these stay opaque byte blobs.
        .opaque_type("rte_l2tpv2_.*|rte_gtp_.*")
        .no_debug("rte_l2tpv2_.*|rte_gtp_.*|rte_flow_item_l2tpv2|rte_flow_item_gtp.*")
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on the DPDK headers");
    bindings
        .write_to_file(out.join("dpdk_sys.rs"))
        .expect("cannot write the generated bindings");
}

/// The raw `pkg-config --cflags libdpdk` tokens, split on whitespace.
fn dpdk_cflags() -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("cannot run pkg-config (install pkg-config)");
    if !output.status.success() {
        panic!(
            "pkg-config --cflags libdpdk failed (install libdpdk-dev): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout)
        .expect("pkg-config printed non-UTF-8 flags")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
