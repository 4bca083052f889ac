//! Finds the system DPDK with pkg-config, compiles the C shim and generates the bindings.
//!
//! Nothing happens unless the `link` feature is on (see Cargo.toml). We run the `pkg-config`
//! program ourselves instead of using the `pkg-config` crate: that crate drops
//! `-include rte_config.h` and `-march=...` from DPDK's cflags, and DPDK's headers need both.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "link")]
    link::run();
}

#[cfg(feature = "link")]
mod link {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    /// Oldest DPDK whose API the shim and the `dataplane` backend are written against.
    const MIN_DPDK: &str = "22.11";

    const INSTALL_HINT: &str = "On Debian 12: `apt-get install pkg-config libdpdk-dev dpdk-dev \
         libclang-dev` (or run `.ci/run`, which installs them). To build without DPDK, leave the \
         `dataplane/dpdk` feature off: the kernel UDP transport needs nothing.";

    pub(crate) fn run() {
        println!("cargo:rerun-if-changed=src/shim.h");
        println!("cargo:rerun-if-changed=src/shim.c");
        for var in [
            "PKG_CONFIG",
            "PKG_CONFIG_PATH",
            "PKG_CONFIG_LIBDIR",
            "PKG_CONFIG_SYSROOT_DIR",
        ] {
            println!("cargo:rerun-if-env-changed={var}");
        }

        let version = pkg_config(&["--modversion"]);
        if !pkg_config_ok(&[&format!("--atleast-version={MIN_DPDK}")]) {
            fail(&format!(
                "found DPDK {version}, but dpdk-sys needs DPDK >= {MIN_DPDK}."
            ));
        }
        let cflags: Vec<String> = pkg_config(&["--cflags"])
            .split_whitespace()
            .map(String::from)
            .collect();
        let libs = pkg_config(&["--libs"]);

        compile_shim(&cflags);
        link_dpdk(&libs);
        generate_bindings(&cflags);

        println!("cargo:rustc-env=DPDK_SYS_PKG_VERSION={version}");
        // Visible to crates that depend on us as DEP_DPDK_VERSION.
        println!("cargo:version={version}");
    }

    /// Runs `pkg-config ARGS libdpdk` and returns its standard output, or stops the build with a
    /// message that says what is missing and how to install it.
    fn pkg_config(args: &[&str]) -> String {
        let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
        let out = match Command::new(&program).args(args).arg("libdpdk").output() {
            Ok(out) => out,
            Err(e) => fail(&format!(
                "cannot run `{program}` ({e}); it is needed to find DPDK."
            )),
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let search = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"]
                .iter()
                .filter_map(|v| env::var(v).ok().map(|val| format!("{v}={val}")))
                .collect::<Vec<_>>()
                .join(", ");
            fail(&format!(
                "pkg-config cannot find libdpdk{}: {}",
                if search.is_empty() {
                    String::new()
                } else {
                    format!(" (with {search})")
                },
                stderr.trim()
            ));
        }
        String::from_utf8(out.stdout)
            .unwrap_or_else(|_| fail("pkg-config printed non-UTF-8 output"))
    }

    fn pkg_config_ok(args: &[&str]) -> bool {
        let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
        Command::new(program)
            .args(args)
            .arg("libdpdk")
            .status()
            .is_ok_and(|s| s.success())
    }

    fn compile_shim(cflags: &[String]) {
        let mut build = cc::Build::new();
        build
            .file("src/shim.c")
            .include("src")
            .warnings(true)
            .extra_warnings(true);
        for flag in cflags {
            build.flag(flag);
        }
        // DPDK's headers trip -Wextra on unused parameters in inline functions.
        build.flag_if_supported("-Wno-unused-parameter");
        build.compile("openais_dpdk_shim");
    }

    /// Emits link directives for `pkg-config --libs libdpdk`. Libraries are linked dynamically; the
    /// poll-mode drivers (net_ring, net_memif, net_af_packet...) are plugins that EAL loads at run
    /// time from DPDK's driver directory, so they need no link directive.
    fn link_dpdk(libs: &str) {
        for token in libs.split_whitespace() {
            if let Some(dir) = token.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = token.strip_prefix("-l") {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
            // `-Wl,--as-needed` and similar linker flags are left out: rustc places link args
            // where it likes, so a positional flag would not mean what pkg-config meant.
        }
    }

    fn generate_bindings(cflags: &[String]) {
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let bindings = bindgen::Builder::default()
            .header("src/shim.h")
            .clang_args(cflags)
            .clang_arg("-Isrc")
            .rust_edition(bindgen::RustEdition::Edition2024)
            .allowlist_function("shim_.*")
            .allowlist_function("rte_(eal|eth|pktmbuf|mempool|ring|lcore|socket|thread|strerror|version|exit|log|vdev|dev)_?.*")
            .allowlist_type("rte_.*")
            .allowlist_var("RTE_.*")
            // Packed structs that embed aligned ones do not compile in Rust (E0588).
            .opaque_type("rte_arp_hdr")
            .opaque_type("rte_arp_ipv4")
            .opaque_type("rte_l2tpv2_combined_msg_hdr")
            .opaque_type("rte_gtp_psc_generic_hdr")
            // Function-like macros such as RTE_BIT64 produce offload flag constants.
            .clang_macro_fallback()
            .derive_default(true)
            .prepend_enum_name(false)
            .generate_cstr(true)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
            .unwrap_or_else(|e| {
                fail(&format!("bindgen could not generate the DPDK bindings: {e}. It needs libclang."))
            });
        bindings
            .write_to_file(out.join("bindings.rs"))
            .unwrap_or_else(|e| fail(&format!("cannot write bindings.rs: {e}")));
    }

    fn fail(what: &str) -> ! {
        eprintln!("\nerror: dpdk-sys: {what}\n{INSTALL_HINT}\n");
        panic!("dpdk-sys: {what}");
    }
}
