//! The dependency arrows of the workspace point down only (docs/architecture.md).
//!
//! Reads `cargo metadata` and fails when a crate depends (normally, at build time or for its
//! tests) on a workspace crate of the same or a higher layer, or when a workspace crate is not
//! placed in a layer at all, so that a new crate has to be given one on purpose. A test tool
//! (the simulator) may be a dev-dependency only, so no program ships with it inside.

use std::collections::BTreeMap;
use std::process::Command;

/// Layer of every workspace crate, bottom first. A crate may depend only on lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("dpdk-sys", 0),
    ("dataplane", 1),
    ("netlab", 1),
    ("hpi", 1),
    ("ais-proto", 1),
    ("totem-dpdk", 2),
    ("ais-client", 2),
    ("totem-evlog", 3),
    ("ais-core", 3),
    // An application (the example 2N service): it links the client library only.
    ("amf-counter", 3),
    // The shelf manager: a program beside the cluster, which uses it (CKPT, AMF) as an
    // application does, through the client library only.
    ("shelf-manager", 3),
    ("totem-sim", 4),
    ("ais", 5),
    ("bench", 6),
];

/// Crates that only tests may depend on: a normal or build dependency on one is reported even
/// when it points down (`aisexec` links the event log and checker, `totem-evlog`, not them).
const TEST_TOOLS: &[&str] = &["totem-sim"];

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// (crate, dependency, kind) for every dependency between workspace crates.
fn internal_edges(meta: &serde_json::Value) -> (Vec<String>, Vec<(String, String, String)>) {
    let packages = meta["packages"].as_array().expect("packages");
    let names: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut edges = Vec::new();
    for p in packages {
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            if names.iter().any(|n| n == dep) {
                let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                edges.push((
                    p["name"].as_str().unwrap().to_string(),
                    dep.to_string(),
                    kind,
                ));
            }
        }
    }
    (names, edges)
}

fn violations(
    layers: &BTreeMap<&str, u8>,
    names: &[String],
    edges: &[(String, String, String)],
) -> Vec<String> {
    let mut bad = Vec::new();
    for n in names {
        if !layers.contains_key(n.as_str()) {
            bad.push(format!(
                "crate `{n}` has no layer: add it to LAYERS and docs/architecture.md"
            ));
        }
    }
    for (from, to, kind) in edges {
        if let (Some(a), Some(b)) = (layers.get(from.as_str()), layers.get(to.as_str()))
            && b >= a
        {
            bad.push(format!(
                "`{from}` (layer {a}) has a {kind} dependency on `{to}` (layer {b})"
            ));
        }
        if TEST_TOOLS.contains(&to.as_str()) && kind != "dev" {
            bad.push(format!(
                "`{from}` has a {kind} dependency on the test tool `{to}`: make it a dev-dependency"
            ));
        }
    }
    bad
}

#[test]
fn dependencies_point_down_only() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let (names, edges) = internal_edges(&metadata());
    assert!(
        names.len() >= LAYERS.len(),
        "cargo metadata lists fewer crates than LAYERS: {names:?}"
    );
    let bad = violations(&layers, &names, &edges);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
    // The core chain the architecture promises must actually be wired.
    for (from, to) in [
        ("dataplane", "dpdk-sys"),
        ("totem-dpdk", "dataplane"),
        ("ais-client", "ais-proto"),
        ("ais-core", "ais-proto"),
        ("ais-core", "totem-dpdk"),
        ("ais", "ais-core"),
        ("ais", "totem-dpdk"),
        ("ais", "totem-evlog"),
    ] {
        assert!(
            edges.iter().any(|(f, t, _)| f == from && t == to),
            "expected `{from}` to depend on `{to}`"
        );
    }
}

#[test]
fn an_upward_dependency_is_reported() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let names = vec![
        "dataplane".to_string(),
        "ais".to_string(),
        "newcomer".to_string(),
    ];
    let edges = vec![
        ("dataplane".into(), "ais".into(), "dev".into()),
        ("ais".into(), "totem-sim".into(), "normal".into()),
        ("ais".into(), "totem-sim".into(), "dev".into()),
    ];
    let bad = violations(&layers, &names, &edges);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad[0].contains("`newcomer` has no layer"));
    assert!(bad[1].contains("`dataplane` (layer 1) has a dev dependency on `ais` (layer 5)"));
    assert!(bad[2].contains("`ais` has a normal dependency on the test tool `totem-sim`"));
}

/// Every crate `package` links (normal dependencies, transitively, on this host), from
/// `cargo tree`.
fn linked_crates(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{lib}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(" (*)").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What an application must not link through the client library: Totem, the frame crypto,
/// the configuration parser, a command-line parser, the executive.
const NOT_IN_CLIENTS: &[&str] = &[
    "totem_dpdk",
    "totem_evlog",
    "ais_core",
    "ring",
    "hkdf",
    "sha2",
    "toml",
    "clap",
    "crossbeam_channel",
];

#[test]
fn the_client_library_links_no_totem_crypto_config_or_cli() {
    let client = linked_crates("ais-client");
    assert!(
        client.iter().any(|c| c == "ais_proto") && client.iter().any(|c| c == "dataplane"),
        "cargo tree lists what the client links: {client:?}"
    );
    let bad: Vec<&String> = client
        .iter()
        .filter(|c| NOT_IN_CLIENTS.contains(&c.as_str()))
        .collect();
    assert!(bad.is_empty(), "ais-client links {bad:?}");
    // The same check finds them in the executive core, which does link Totem and its crypto.
    let core = linked_crates("ais-core");
    for c in ["totem_dpdk", "ring"] {
        assert!(core.iter().any(|n| n == c), "{c} in {core:?}");
    }
}

#[test]
fn the_example_application_links_no_totem_crypto_or_config() {
    let app = linked_crates("amf-counter");
    assert!(
        app.iter().any(|c| c == "ais_client"),
        "cargo tree lists what the example links: {app:?}"
    );
    // A program may parse its command line; nothing else of the list.
    let bad: Vec<&String> = app
        .iter()
        .filter(|c| NOT_IN_CLIENTS.contains(&c.as_str()) && c.as_str() != "clap")
        .collect();
    assert!(bad.is_empty(), "amf-counter links {bad:?}");
}

#[test]
fn the_shelf_manager_links_the_client_library_only() {
    let shelf = linked_crates("shelf-manager");
    assert!(
        shelf.iter().any(|c| c == "ais_client"),
        "cargo tree lists what the shelf manager links: {shelf:?}"
    );
    // It has its own command line, configuration file and RMCP+ hashes (sha2, toml, clap);
    // nothing of the cluster beyond the client library.
    let bad: Vec<&String> = shelf
        .iter()
        .filter(|c| {
            NOT_IN_CLIENTS.contains(&c.as_str()) && !["clap", "toml", "sha2"].contains(&c.as_str())
        })
        .collect();
    assert!(bad.is_empty(), "shelf-manager links {bad:?}");
}
