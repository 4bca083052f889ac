//! The configuration files: every `aisexec` example in `configs/` (all `*.toml` but the shelf
//! manager's `shelf*.toml`) parses, validates and converts, and each kind of mistake gives one
//! error naming the file, the line and the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ais::config::{
    CONFIG_FILE_ENV, Config, ConfigError, CryptoCipher, DEFAULT_CONFIG_FILE, FrameProtection,
    TransportKind,
};
use ais::keyfile::DEFAULT_KEYFILE;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

#[test]
fn every_example_parses_validates_and_converts() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(configs_dir())
        .expect("configs/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        // `shelf*.toml` are shelf manager models, tested by `shelf-manager/tests/configs.rs`.
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shelf"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "configs/ holds no *.toml example");
    for file in &files {
        let config = Config::from_file(file).unwrap_or_else(|e| panic!("{e}"));
        let totem = config.totem_config();
        totem
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(totem.members.is_empty());
        assert_eq!(totem.ring_seq, 0);
        let udp = config.udp_config();
        assert!(!udp.bind.ip().is_unspecified(), "{}", file.display());
        let members = config.members();
        match config.totem.transport {
            TransportKind::Udpu => {
                assert_eq!(members.len(), config.nodelist.node.len());
                assert!(members.iter().any(|m| m.addr == udp.bind));
            }
            _ => assert!(members.is_empty()),
        }
    }
}

#[test]
fn the_loopback_example_gives_each_node_its_port() {
    let config = Config::from_file(&configs_dir().join("loopback-udpu.toml")).unwrap();
    let addrs: Vec<SocketAddr> = config.members().iter().map(|m| m.addr).collect();
    assert_eq!(
        addrs,
        ["127.0.0.1:5405", "127.0.0.1:5406", "127.0.0.1:5407"].map(|a| a.parse().unwrap())
    );
    assert_eq!(config.udp_config().bind, addrs[0]);
    assert_eq!(config.udp_config().mtu, 1472);
    assert!(config.totem.secauth);
    assert_eq!(config.protection(), FrameProtection::Encrypt);
    assert_eq!(config.totem.keyfile, Path::new("/tmp/openais-demo/authkey"));
}

#[test]
fn the_lan_examples_encrypt_with_the_default_key_file() {
    for name in [
        "multicast-lan.toml",
        "unicast-lan.toml",
        "dedicated-link-timers.toml",
    ] {
        let config = Config::from_file(&configs_dir().join(name)).unwrap();
        assert_eq!(config.protection(), FrameProtection::Encrypt, "{name}");
        assert_eq!(config.totem.keyfile, Path::new(DEFAULT_KEYFILE), "{name}");
    }
}

#[test]
fn the_dedicated_link_example_maps_every_timer() {
    let config = Config::from_file(&configs_dir().join("dedicated-link-timers.toml")).unwrap();
    let t = config.totem_config();
    assert_eq!(t.token_timeout.as_millis(), 20);
    assert_eq!(t.consensus_timeout.as_millis(), 10);
    assert!(config.totem.short_consensus);
    assert_eq!(t.join_timeout.as_millis(), 4);
    assert_eq!(t.merge_timeout.as_millis(), 20);
    assert_eq!(t.pause_threshold.as_millis(), 10, "token / 2");
    assert_eq!(t.max_frame_size, 8972);
    assert_eq!(config.udp_config().mtu, 8972);
    assert_eq!(config.aisexec.cpu, Some(2));
    let driver = config.driver_config(t);
    assert_eq!(driver.cpu, Some(2));
    assert_eq!(driver.nice, Some(config.aisexec.totem_nice));
}

#[test]
fn defaults_follow_the_documentation() {
    let text = "[totem]\nnodeid = 7\nsecauth = false\n[totem.interface]\nbindnetaddr = \"fd00::7\"\nmcastaddr = \"ff15::1\"\n";
    let config = Config::from_str(text, "defaults.toml").unwrap();
    let t = config.totem_config();
    assert_eq!(t.node_id, totem_dpdk::NodeId(7));
    assert_eq!(t.token_timeout.as_millis(), 100);
    assert_eq!(t.token_retransmits_before_loss, 4);
    assert_eq!(t.join_timeout.as_millis(), 25);
    assert_eq!(t.consensus_timeout.as_millis(), 120);
    assert_eq!(t.merge_timeout.as_millis(), 200);
    assert_eq!(t.pause_threshold.as_millis(), 50);
    assert_eq!(t.seqno_unchanged_const, 5);
    assert_eq!(t.token_pace, totem_dpdk::Duration::from_millis(1));
    assert_eq!(t.fail_recv_const, 50);
    assert_eq!(t.window_size, 50);
    assert_eq!(t.max_messages, 17);
    assert_eq!(t.max_message_size, 64 << 20);
    assert_eq!(t.max_queued_bytes, 8 << 20);
    // IPv6: 1500 - 48.
    assert_eq!(t.max_frame_size, 1452);
    let udp = config.udp_config();
    assert_eq!(udp.mtu, 1452);
    assert_eq!(udp.bind, "[fd00::7]:5404".parse().unwrap());
    match udp.mode {
        dataplane::udp::Mode::Multicast {
            group,
            port,
            ttl,
            loopback,
            ..
        } => {
            assert_eq!(group, "ff15::1".parse::<std::net::IpAddr>().unwrap());
            assert_eq!((port, ttl, loopback), (5405, 1, false));
        }
        dataplane::udp::Mode::Unicast => panic!("udp must be multicast"),
    }
    assert!(config.logging.to_stderr);
    assert!(!config.logging.debug);
    assert_eq!(
        config.aisexec.ipc_socket,
        Path::new("/run/openais/aisexec.sock")
    );
    assert_eq!(config.aisexec.state_dir, Path::new("/var/lib/openais"));
    assert_eq!(config.aisexec.totem_nice, -10);
    assert_eq!(config.driver_config(config.totem_config()).nice, Some(-10));
}

/// A valid `udpu` configuration; each mistake below changes one thing in it.
const GOOD: &str = r#"# A three-node unicast ring.
[totem]
nodeid = 1
transport = "udpu"
secauth = false
token = 100

[totem.interface]
mcastport = 5405

[[nodelist.node]]
nodeid = 1
ring0_addr = "10.0.0.1"

[[nodelist.node]]
nodeid = 2
ring0_addr = "10.0.0.2"

[[nodelist.node]]
nodeid = 3
ring0_addr = "10.0.0.3"
"#;

#[test]
fn the_base_of_the_mistakes_is_valid() {
    Config::from_str(GOOD, "good.toml").unwrap();
}

/// Parses `text` as `bad.toml`, expects exactly one error at `line` about `key`, returns it.
fn mistake(text: &str, line: u32, key: &str) -> ConfigError {
    let error = Config::from_str(text, "bad.toml").expect_err("the mistake must be reported");
    let shown = error.to_string();
    let at = error.location().expect("the error has a location");
    assert_eq!(at.origin, "bad.toml", "{shown}");
    assert_eq!(at.line, Some(line), "{shown}");
    assert!(at.column.is_some(), "{shown}");
    assert_eq!(at.key.as_deref(), Some(key), "{shown}");
    assert!(shown.starts_with(&format!("bad.toml:{line}:")), "{shown}");
    assert!(shown.contains(&format!(": {key}: ")), "{shown}");
    assert_eq!(shown.lines().count(), 1, "{shown}");
    error
}

#[test]
fn a_misspelt_key_is_named() {
    let text = GOOD.replace("token = 100", "tokne = 100");
    let e = mistake(&text, 6, "totem.tokne");
    assert!(matches!(e, ConfigError::Syntax(_)));
    assert!(e.to_string().contains("unknown field"), "{e}");
}

#[test]
fn a_misspelt_key_in_a_node_entry_is_named() {
    let text = GOOD.replace("ring0_addr = \"10.0.0.2\"", "ring0_adr = \"10.0.0.2\"");
    mistake(&text, 17, "nodelist.node[1].ring0_adr");
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let text = GOOD.replace("token = 100", "token = \"fast\"");
    let e = mistake(&text, 6, "totem.token");
    assert!(matches!(e, ConfigError::Syntax(_)));
}

#[test]
fn a_bad_address_is_named() {
    let text = GOOD.replace("\"10.0.0.3\"", "\"10.0.0.300\"");
    mistake(&text, 21, "nodelist.node[2].ring0_addr");
}

#[test]
fn a_missing_nodeid_is_named() {
    let text = GOOD.replace("nodeid = 1\ntransport", "transport");
    let e = mistake(&text, 2, "totem.nodeid");
    assert!(e.to_string().contains("missing field"), "{e}");
}

#[test]
fn node_id_zero_is_refused() {
    let text = GOOD.replace("nodeid = 1\ntransport", "nodeid = 0\ntransport");
    mistake(&text, 3, "totem.nodeid");
}

#[test]
fn a_token_pace_not_below_the_hold_is_refused() {
    // token 20 ms: retransmit 4.76 ms, hold 2380 µs.
    let text = GOOD.replace(
        "token = 100",
        "token = 20\nconsensus = 24\njoin = 5\ntoken_pace_us = 2380",
    );
    let e = mistake(&text, 9, "totem.token_pace_us");
    assert!(
        e.to_string().contains("below the token hold of 2380 µs"),
        "{e}"
    );
    let ok = GOOD.replace(
        "token = 100",
        "token = 20\nconsensus = 24\njoin = 5\ntoken_pace_us = 2379",
    );
    Config::from_str(&ok, "good.toml").unwrap();
    // Not set, the 1 ms default applies only where the hold is longer: a short token stays
    // valid and unpaced (token 8 ms: hold 952 µs), a token of 9 ms is paced (hold 1071 µs).
    let pace = |token: &str| {
        let text = GOOD.replace(
            "token = 100",
            &format!("token = {token}\nconsensus = 24\njoin = 2"),
        );
        let c = Config::from_str(&text, "good.toml").unwrap();
        c.totem_config().token_pace
    };
    assert_eq!(pace("8"), totem_dpdk::Duration(0));
    assert_eq!(pace("9"), totem_dpdk::Duration::from_millis(1));
}

#[test]
fn consensus_below_token_is_refused() {
    let text = GOOD.replace("token = 100", "token = 100\nconsensus = 50");
    let e = mistake(&text, 7, "totem.consensus");
    assert!(matches!(e, ConfigError::Invalid(_)));
    assert_eq!(
        e.to_string(),
        "bad.toml:7:1: totem.consensus: must be at least totem.token (100 ms), got 50 ms (a \
         shorter consensus detects a crash sooner but excludes a member slow to answer for \
         longer than it: set totem.short_consensus = true to accept that)"
    );
}

#[test]
fn consensus_below_token_needs_short_consensus() {
    let text = GOOD.replace(
        "token = 100",
        "token = 100\nconsensus = 50\nshort_consensus = true",
    );
    let cfg = Config::from_str(&text, "good.toml").expect("accepted with short_consensus");
    assert_eq!(cfg.totem.consensus_ms(), 50);
    assert_eq!(cfg.totem_config().consensus_timeout.as_millis(), 50);
    // The join interval must still be below it.
    let text = GOOD.replace(
        "token = 100",
        "token = 100\nconsensus = 20\njoin = 20\nshort_consensus = true",
    );
    let e = mistake(&text, 8, "totem.join");
    assert!(
        e.to_string().contains("less than totem.consensus (20 ms)"),
        "{e}"
    );
}

#[test]
fn a_unicast_mcastaddr_is_refused() {
    let text = "[totem]\nnodeid = 1\nsecauth = false\n\n[totem.interface]\nbindnetaddr = \"10.0.0.1\"\n  mcastaddr = \"10.0.0.255\"\n";
    let e = mistake(text, 7, "totem.interface.mcastaddr");
    assert!(e.to_string().starts_with("bad.toml:7:3:"), "{e}");
    assert!(e.to_string().contains("not a multicast address"), "{e}");
}

#[test]
fn udpu_without_a_nodelist_is_refused() {
    let text = GOOD.split("[[nodelist.node]]").next().unwrap();
    // No `[nodelist]` in the text: the error points at the `transport` line.
    let e = mistake(text, 4, "nodelist");
    assert!(e.to_string().contains("udpu"), "{e}");
}

#[test]
fn a_duplicate_nodeid_is_refused() {
    let text = GOOD.replace("nodeid = 3\n", "nodeid = 2\n");
    let e = mistake(&text, 20, "nodelist.node[2].nodeid");
    assert!(
        e.to_string().contains("already used by nodelist.node[1]"),
        "{e}"
    );
}

#[test]
fn a_duplicate_address_is_refused() {
    let text = GOOD.replace("10.0.0.3", "10.0.0.2");
    mistake(&text, 21, "nodelist.node[2].ring0_addr");
}

#[test]
fn a_nodeid_missing_from_the_nodelist_is_refused() {
    let text = GOOD.replace("nodeid = 1\ntransport", "nodeid = 9\ntransport");
    let e = mistake(&text, 3, "totem.nodeid");
    assert!(e.to_string().contains("not in the nodelist"), "{e}");
}

#[test]
fn netmtu_out_of_range_is_refused() {
    for mtu in [575, 9217] {
        let text = GOOD.replace("token = 100", &format!("token = 100\nnetmtu = {mtu}"));
        let e = mistake(&text, 7, "totem.netmtu");
        assert!(e.to_string().contains("576..=9216"), "{e}");
    }
}

#[test]
fn a_nice_value_out_of_range_is_refused() {
    for nice in [-21, 20] {
        let text = format!("{GOOD}[aisexec]\ntotem_nice = {nice}\n");
        let e = mistake(&text, 23, "aisexec.totem_nice");
        assert!(e.to_string().contains("-20 (the most CPU) to 19"), "{e}");
    }
    let text = format!("{GOOD}[aisexec]\ntotem_nice = -20\n");
    let config = Config::from_str(&text, "good.toml").unwrap();
    assert_eq!(config.driver_config(config.totem_config()).nice, Some(-20));
}

#[test]
fn an_empty_byte_bound_is_refused() {
    let text = GOOD.replace("token = 100", "token = 100\nmax_queued_bytes = 0");
    let e = mistake(&text, 7, "totem.max_queued_bytes");
    assert!(e.to_string().contains("at least 1 byte"), "{e}");
}

#[test]
fn window_size_below_max_messages_is_refused() {
    let text = GOOD.replace("token = 100", "token = 100\nwindow_size = 10");
    mistake(&text, 7, "totem.window_size");
}

#[test]
fn secauth_defaults_to_encrypting_with_the_default_key_file() {
    // GOOD without its `secauth = false`: every crypto key left out.
    let text = GOOD.replace("secauth = false\n", "");
    let config = Config::from_str(&text, "good.toml").unwrap();
    assert!(config.totem.secauth);
    assert_eq!(config.totem.crypto_cipher, None);
    assert_eq!(config.totem.cipher(), CryptoCipher::Aes256);
    assert_eq!(config.protection(), FrameProtection::Encrypt);
    assert_eq!(config.totem.keyfile, Path::new(DEFAULT_KEYFILE));
    assert_eq!(DEFAULT_KEYFILE, "/etc/openais/authkey");

    let text = GOOD.replace("secauth = false", "secauth = true");
    let config = Config::from_str(&text, "good.toml").unwrap();
    assert_eq!(config.protection(), FrameProtection::Encrypt);

    let config = Config::from_str(GOOD, "good.toml").unwrap();
    assert_eq!(config.protection(), FrameProtection::Integrity);
    assert!(!config.protection().needs_key());
}

#[test]
fn cipher_none_authenticates_only() {
    let text = GOOD.replace(
        "secauth = false",
        "secauth = true\ncrypto_cipher = \"none\"\nkeyfile = \"/srv/openais/authkey\"",
    );
    let config = Config::from_str(&text, "good.toml").unwrap();
    assert_eq!(config.totem.crypto_cipher, Some(CryptoCipher::None));
    assert_eq!(config.protection(), FrameProtection::Authenticate);
    assert!(config.protection().needs_key());
    assert_eq!(config.totem.keyfile, Path::new("/srv/openais/authkey"));
}

#[test]
fn an_unknown_cipher_is_named_with_the_allowed_values() {
    let text = GOOD.replace(
        "secauth = false",
        "secauth = true\ncrypto_cipher = \"aes128\"",
    );
    let e = mistake(&text, 6, "totem.crypto_cipher");
    assert!(matches!(e, ConfigError::Syntax(_)));
    assert!(e.to_string().starts_with("bad.toml:6:17: "), "{e}");
    assert!(e.to_string().contains("\"aes128\""), "{e}");
    assert!(
        e.to_string().contains("\"aes256\"") && e.to_string().contains("\"none\""),
        "{e}"
    );
    // Not a string at all.
    let text = GOOD.replace("secauth = false", "crypto_cipher = 256");
    mistake(&text, 5, "totem.crypto_cipher");
}

#[test]
fn encryption_without_secauth_is_refused() {
    let text = GOOD.replace(
        "secauth = false",
        "secauth = false\ncrypto_cipher = \"aes256\"",
    );
    let e = mistake(&text, 6, "totem.crypto_cipher");
    assert!(matches!(e, ConfigError::Invalid(_)));
    assert!(e.to_string().contains("needs secauth = true"), "{e}");
}

#[test]
fn an_empty_keyfile_is_refused() {
    let text = GOOD.replace("secauth = false", "keyfile = \"\"");
    let e = mistake(&text, 5, "totem.keyfile");
    assert!(e.to_string().contains("must not be empty"), "{e}");
}

#[test]
fn dpdk_needs_its_port() {
    let text = GOOD.replace("\"udpu\"", "\"dpdk\"");
    let config = Config::parse(&text, "bad.toml").unwrap();
    assert_eq!(config.totem.transport, TransportKind::Dpdk);
    let e = config.validate().unwrap_err();
    assert!(e.to_string().starts_with("bad.toml:4:1: dpdk: "), "{e}");
    assert!(e.to_string().contains("needs [dpdk] port"), "{e}");
    let with_port = format!(
        "{text}\n[dpdk]\nport = \"net_af_packet0\"\neal_args = [\"--no-huge\", \"--vdev=net_af_packet0,iface=eth0\"]\n"
    );
    let config = Config::parse(&with_port, "good.toml").unwrap();
    config.validate().unwrap();
    assert_eq!(config.dpdk.port, "net_af_packet0");
    assert_eq!(config.dpdk.eal_args.len(), 2);
    assert!(!config.dpdk.busy_poll);
    assert_eq!(config.dpdk.max_backoff_us, 1000);
    let slow = format!("{with_port}max_backoff_us = 5\n");
    let e = Config::parse(&slow, "slow.toml")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("dpdk.max_backoff_us"), "{e}");
    assert!(e.to_string().contains("10..=100000"), "{e}");
}

#[test]
fn an_unreadable_file_names_the_path() {
    let e = Config::from_file(Path::new("/nonexistent/aisexec.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string().starts_with("/nonexistent/aisexec.toml: "),
        "{e}"
    );
}

#[test]
fn locate_prefers_the_explicit_path_then_the_environment() {
    let env: HashMap<&str, &str> = HashMap::from([(CONFIG_FILE_ENV, "/srv/ais.toml")]);
    let with_env = |name: &str| env.get(name).map(|v| (*v).to_owned());
    let none = |_: &str| None;
    let empty = |_: &str| Some(String::new());
    assert_eq!(CONFIG_FILE_ENV, "OPENAIS_MAIN_CONFIG_FILE");
    assert_eq!(
        Config::locate_with(Some(Path::new("/a.toml")), with_env),
        Path::new("/a.toml")
    );
    assert_eq!(
        Config::locate_with(None, with_env),
        Path::new("/srv/ais.toml")
    );
    assert_eq!(
        Config::locate_with(None, none),
        Path::new(DEFAULT_CONFIG_FILE)
    );
    assert_eq!(
        Config::locate_with(None, empty),
        Path::new(DEFAULT_CONFIG_FILE)
    );
    assert_eq!(DEFAULT_CONFIG_FILE, "/etc/openais/aisexec.toml");
}

#[test]
fn an_empty_file_names_the_missing_table() {
    let e = Config::from_str("", "empty.toml").unwrap_err();
    assert_eq!(e.location().unwrap().key.as_deref(), Some("totem"));
    assert!(e.to_string().starts_with("empty.toml"), "{e}");
}

#[test]
fn a_missing_key_in_a_node_entry_is_named() {
    let text = GOOD.replace("ring0_addr = \"10.0.0.2\"\n", "");
    let e = mistake(&text, 15, "nodelist.node[1].ring0_addr");
    assert!(e.to_string().contains("missing field"), "{e}");
}

#[test]
fn pause_threshold_is_parsed_and_zero_turns_it_off() {
    let text = GOOD.replace("token = 100", "token = 100\npause_threshold = 300");
    let config = Config::from_str(&text, "pause.toml").unwrap();
    assert_eq!(config.totem.pause_threshold_ms(), 300);
    assert_eq!(config.totem_config().pause_threshold.as_millis(), 300);
    let text = GOOD.replace("token = 100", "token = 100\npause_threshold = 0");
    let config = Config::from_str(&text, "pause.toml").unwrap();
    assert_eq!(
        config.totem_config().pause_threshold,
        totem_dpdk::Duration::ZERO
    );
    let text = GOOD.replace("token = 100", "token = 100\npause_threshold = 99999999");
    let e = mistake(&text, 7, "totem.pause_threshold");
    assert!(e.to_string().contains("must be 1..="), "{e}");
}

#[test]
fn quorum_defaults_come_from_the_node_list() {
    let config = Config::from_str(&format!("{GOOD}\n[quorum]\n"), "q.toml").unwrap();
    let q = config.quorum_config().expect("[quorum] given");
    assert_eq!(
        (q.votes, q.expected_votes, q.two_node, q.wait_for_all),
        (1, 3, false, false)
    );
    assert_eq!(
        Config::from_str(GOOD, "q.toml").unwrap().quorum_config(),
        None
    );
    let two = format!("{}\n[quorum]\nexpected_votes = 2\ntwo_node = true\n", GOOD);
    let q = Config::from_str(&two, "q.toml")
        .unwrap()
        .quorum_config()
        .unwrap();
    assert!(
        q.two_node && q.wait_for_all,
        "two_node implies wait_for_all"
    );
}

#[test]
fn quorum_mistakes_are_named() {
    let at = GOOD.lines().count() as u32 + 2;
    let e = mistake(
        &format!("{GOOD}\n[quorum]\nexpected_votes = 0\n"),
        at + 1,
        "quorum.expected_votes",
    );
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = mistake(
        &format!("{GOOD}\n[quorum]\ntwo_node = true\n"),
        at + 1,
        "quorum.two_node",
    );
    assert!(e.to_string().contains("exactly two"), "{e}");
    // Without a node list the cluster's votes must be given.
    let multicast = "[totem]\nnodeid = 1\nsecauth = false\n\n[totem.interface]\nbindnetaddr = \"10.0.0.1\"\nmcastaddr = \"239.1.1.1\"\n\n[quorum]\nvotes = 1\n";
    let e = mistake(multicast, 9, "quorum.expected_votes");
    assert!(e.to_string().contains("nodelist"), "{e}");
}

#[test]
fn ckpt_settings_have_defaults_and_named_mistakes() {
    let c = Config::from_str(GOOD, "c.toml").unwrap().ckpt_config();
    assert_eq!(c.max_memory, 512 << 20);
    assert!(!c.writes_need_quorum);
    let set =
        format!("{GOOD}\n[quorum]\n\n[ckpt]\nmax_memory_mb = 64\nwrites_need_quorum = true\n");
    let c = Config::from_str(&set, "c.toml").unwrap().ckpt_config();
    assert_eq!((c.max_memory, c.writes_need_quorum), (64 << 20, true));
    let at = GOOD.lines().count() as u32 + 2;
    let e = mistake(
        &format!("{GOOD}\n[ckpt]\nmax_memory_mb = 0\n"),
        at + 1,
        "ckpt.max_memory_mb",
    );
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = mistake(
        &format!("{GOOD}\n[ckpt]\nwrites_need_quorum = true\n"),
        at,
        "ckpt.writes_need_quorum",
    );
    assert!(e.to_string().contains("[quorum]"), "{e}");
}

#[test]
fn evt_settings_have_defaults_and_named_mistakes() {
    let c = Config::from_str(GOOD, "c.toml").unwrap().evt_config();
    assert_eq!(c, ais_core::services::evt::EvtConfig::default());
    let set = format!(
        "{GOOD}\n[evt]\nmax_channels = 8\nmax_retained = 9\nmax_subscriptions = 10\ndelivery_window = 11\ndelivery_queue = 0\n"
    );
    let c = Config::from_str(&set, "c.toml").unwrap().evt_config();
    assert_eq!(
        (
            c.max_channels,
            c.max_retained,
            c.max_subscriptions,
            c.delivery_window,
            c.delivery_queue
        ),
        (8, 9, 10, 11, 0)
    );
    let at = GOOD.lines().count() as u32 + 2;
    for key in ["max_channels", "max_subscriptions", "delivery_window"] {
        let e = mistake(
            &format!("{GOOD}\n[evt]\n{key} = 0\n"),
            at + 1,
            &format!("evt.{key}"),
        );
        assert!(e.to_string().contains("at least 1"), "{e}");
    }
    let e = mistake(
        &format!("{GOOD}\n[evt]\nmax_chanels = 3\n"),
        at + 1,
        "evt.max_chanels",
    );
    assert!(!e.to_string().is_empty());
}

#[test]
fn msg_settings_have_defaults_and_named_mistakes() {
    let c = Config::from_str(GOOD, "c.toml").unwrap().msg_config();
    assert_eq!(c, ais_core::services::msg::MsgConfig::default());
    let set = format!(
        "{GOOD}\n[msg]\nmax_queues = 8\nmax_queue_bytes = 1000\nmax_message_bytes = 100\nmax_memory_mb = 2\nmax_groups = 3\n"
    );
    let c = Config::from_str(&set, "c.toml").unwrap().msg_config();
    assert_eq!(
        (
            c.max_queues,
            c.max_queue_size,
            c.max_message_size,
            c.max_memory,
            c.max_groups
        ),
        (8, 1000, 100, 2 << 20, 3)
    );
    let at = GOOD.lines().count() as u32 + 2;
    let e = mistake(
        &format!("{GOOD}\n[msg]\nmax_queues = 0\n"),
        at + 1,
        "msg.max_queues",
    );
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = mistake(
        &format!("{GOOD}\n[msg]\nmax_message_bytes = 200000\n"),
        at + 1,
        "msg.max_message_bytes",
    );
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[test]
fn lck_settings_have_defaults_and_named_mistakes() {
    let c = Config::from_str(GOOD, "c.toml").unwrap().lck_config();
    assert_eq!((c.max_resources, c.max_locks), (1024, 4096));
    let set = format!("{GOOD}\n[lck]\nmax_resources = 8\nmax_locks = 100\n");
    let c = Config::from_str(&set, "c.toml").unwrap().lck_config();
    assert_eq!((c.max_resources, c.max_locks), (8, 100));
    let at = GOOD.lines().count() as u32 + 2;
    let e = mistake(
        &format!("{GOOD}\n[lck]\nmax_resources = 0\n"),
        at + 1,
        "lck.max_resources",
    );
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = mistake(
        &format!("{GOOD}\n[lck]\nmax_locks = 0\n"),
        at + 1,
        "lck.max_locks",
    );
    assert!(e.to_string().contains("at least 1"), "{e}");
}

#[test]
fn hpi_settings_have_defaults_and_named_mistakes() {
    let c = Config::from_str(GOOD, "c.toml").unwrap();
    assert!(c.hpi.is_none(), "no [hpi]: this node watches no shelf");
    let set = format!(
        "{GOOD}\n[hpi]\naddress = \"10.0.0.2\"\ncredentials = \"/etc/openais/shelf.cred\"\n"
    );
    let h = Config::from_str(&set, "c.toml").unwrap().hpi.unwrap();
    assert_eq!(
        (h.address.as_str(), h.port, h.user, h.slot, h.sel_poll_ms),
        ("10.0.0.2", 623, None, None, 50)
    );
    assert_eq!(h.credentials, PathBuf::from("/etc/openais/shelf.cred"));
    let at = GOOD.lines().count() as u32 + 2;
    let base = "[hpi]\naddress = \"10.0.0.2\"\ncredentials = \"/c\"\n";
    for (extra, key, says) in [
        ("sel_poll_ms = 5\n", "hpi.sel_poll_ms", "out of range"),
        ("slot = 0\n", "hpi.slot", "from 1"),
        ("port = 0\n", "hpi.port", "623"),
    ] {
        let e = mistake(&format!("{GOOD}\n{base}{extra}"), at + 3, key);
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = mistake(
        &format!("{GOOD}\n[hpi]\naddress = \"\"\ncredentials = \"/c\"\n"),
        at + 1,
        "hpi.address",
    );
    assert!(e.to_string().contains("empty"), "{e}");
    // The address and the credentials file are required.
    assert!(Config::from_str(&format!("{GOOD}\n[hpi]\ncredentials = \"/c\"\n"), "c").is_err());
    assert!(Config::from_str(&format!("{GOOD}\n[hpi]\naddress = \"h\"\n"), "c").is_err());
}

/// The shelf's credentials: a file others may read is refused with a clear error that never
/// shows the password; a configured user must be the file's; an owner-only file is taken.
#[test]
fn hpi_credentials_must_be_owner_only_and_stay_secret() {
    use ais::shelfwatch::{Watch, WatchError};
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("ais-hpi-cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shelf.cred");
    std::fs::write(&file, "user = admin\npassword = s3cret-Pw\n").unwrap();
    let text = format!(
        "{GOOD}\n[hpi]\naddress = \"127.0.0.1\"\nport = 6230\ncredentials = {:?}\nslot = 3\n",
        file.display().to_string()
    );
    let hpi = Config::from_str(&text, "c.toml").unwrap().hpi.unwrap();
    let socket = dir.join("sock");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Watch::new(&hpi, socket.clone()).expect_err("a world-readable file is refused");
    let shown = e.to_string();
    assert!(matches!(e, WatchError::Credentials(_)), "{shown}");
    assert!(
        shown.contains("chmod 600") && shown.contains("644"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let w = Watch::new(&hpi, socket.clone()).expect("an owner-only file is taken");
    assert!(!format!("{w:?}").contains("s3cret"), "{w:?}");

    let mut other = hpi.clone();
    other.user = Some("operator".into());
    let e = Watch::new(&other, socket).expect_err("another user is refused");
    assert!(matches!(e, WatchError::User { .. }), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_redundant_rings_example_gives_each_network_its_transport() {
    let config = Config::from_file(&configs_dir().join("redundant-rings.toml")).unwrap();
    assert_eq!(config.networks(), 2);
    let rrp = config.rrp_config();
    assert_eq!(rrp.networks, 2);
    assert_eq!(rrp.mode, totem_dpdk::rrp::RrpMode::Active);
    assert_eq!(rrp.check_interval.as_millis(), 50);
    assert_eq!(rrp.problem_threshold, 3);
    assert_eq!(rrp.copy_timeout.as_millis(), 5);
    assert_eq!(rrp.reenable_windows, 4);
    rrp.validate().unwrap();
    assert_eq!(
        config.udp_config_on(0).bind,
        "192.168.10.1:5405".parse().unwrap()
    );
    let net1 = config.udp_config_on(1);
    assert_eq!(net1.bind, "192.168.11.1:5407".parse().unwrap());
    assert_eq!(net1.mtu, config.udp_config().mtu);
    let addrs: Vec<SocketAddr> = config.members_on(1).iter().map(|m| m.addr).collect();
    assert_eq!(
        addrs,
        [
            "192.168.11.1:5407",
            "192.168.11.2:5407",
            "192.168.11.3:5407"
        ]
        .map(|a| a.parse::<SocketAddr>().unwrap())
    );
}

#[test]
fn one_network_is_the_default_and_runs_no_redundant_ring() {
    let config = Config::from_str(GOOD, "good.toml").unwrap();
    assert_eq!(config.networks(), 1);
    assert_eq!(config.rrp_config().networks, 1);
    assert_eq!(config.totem.rrp_mode, ais::config::RrpModeKey::None);
}

/// GOOD with a second network: every node gets a ring1_addr, and `rrp_mode`.
fn two_networks(mode: &str) -> String {
    GOOD.replace(
        "token = 100",
        &format!("token = 100\nrrp_mode = \"{mode}\""),
    )
    .replace(
        "ring0_addr = \"10.0.0.1\"",
        "ring0_addr = \"10.0.0.1\"\nring1_addr = \"10.1.0.1\"",
    )
    .replace(
        "ring0_addr = \"10.0.0.2\"",
        "ring0_addr = \"10.0.0.2\"\nring1_addr = \"10.1.0.2\"",
    )
    .replace(
        "ring0_addr = \"10.0.0.3\"",
        "ring0_addr = \"10.0.0.3\"\nring1_addr = \"10.1.0.3\"",
    )
}

#[test]
fn copies_are_remembered_for_less_than_the_join_interval() {
    let c = Config::from_str(&two_networks("active"), "good.toml").unwrap();
    assert_eq!(c.rrp_config().memory.as_millis(), 20);
    // A 10 ms join (the copy timeout, 5 ms, must stay below it): its re-sent joins must not
    // be taken for copies of the first.
    let text = two_networks("active").replace("token = 100", "token = 40\njoin = 10");
    let c = Config::from_str(&text, "short-join.toml").unwrap();
    let rrp = c.rrp_config();
    assert_eq!(rrp.memory.as_millis(), 9);
    assert!(rrp.memory >= rrp.copy_timeout);
    rrp.validate().unwrap();
}

#[test]
fn redundant_ring_mistakes_are_located() {
    // The base with two networks is valid in both modes.
    for mode in ["active", "passive"] {
        let c = Config::from_str(&two_networks(mode), "good.toml").unwrap();
        assert_eq!(c.networks(), 2);
    }
    // A node entry without the second network (node 2, whose entry starts on line 17).
    let text = two_networks("active").replace("ring1_addr = \"10.1.0.2\"\n", "");
    let e = mistake(&text, 17, "nodelist.node[1]");
    assert!(e.to_string().contains("lists 1 network(s)"), "{e}");
    // ring2_addr without ring1_addr.
    let text = GOOD.replace(
        "ring0_addr = \"10.0.0.1\"",
        "ring0_addr = \"10.0.0.1\"\nring2_addr = \"10.2.0.1\"",
    );
    let e = mistake(&text, 14, "nodelist.node[0].ring2_addr");
    assert!(e.to_string().contains("without ring1_addr"), "{e}");
    // Two networks with rrp_mode "none".
    let text = two_networks("none");
    let e = mistake(&text, 7, "totem.rrp_mode");
    assert!(e.to_string().contains("2 networks"), "{e}");
    // rrp_mode with one network.
    let text = GOOD.replace("token = 100", "token = 100\nrrp_mode = \"passive\"");
    let e = mistake(&text, 7, "totem.rrp_mode");
    assert!(e.to_string().contains("at least two networks"), "{e}");
    // An unknown mode.
    let e = mistake(&two_networks("both"), 7, "totem.rrp_mode");
    assert!(matches!(e, ConfigError::Syntax(_)));
    // The same address on both networks of a node.
    let text =
        two_networks("active").replace("ring1_addr = \"10.1.0.3\"", "ring1_addr = \"10.0.0.3\"");
    let e = mistake(&text, 25, "nodelist.node[2].ring1_addr");
    assert!(e.to_string().contains("network 0 too"), "{e}");
    // An rrp_interface for a network nobody lists.
    let text = format!(
        "{}\n[[totem.rrp_interface]]\nringnumber = 2\n",
        two_networks("active")
    );
    let e = mistake(&text, 28, "totem.rrp_interface[0].ringnumber");
    assert!(e.to_string().contains("not one of"), "{e}");
    // Copies judged later than the join interval.
    let text = two_networks("active").replace(
        "token = 100",
        "token = 100\njoin = 10\nrrp_token_expired_timeout = 20",
    );
    let e = mistake(&text, 8, "totem.rrp_token_expired_timeout");
    assert!(e.to_string().contains("less than"), "{e}");
    // Multicast transport with the networks of udpu (ringN_addr): the networks of udp are
    // [[totem.rrp_interface]] entries.
    let text = "[totem]\nnodeid = 1\nsecauth = false\nrrp_mode = \"active\"\n[totem.interface]\nbindnetaddr = \"10.0.0.1\"\nmcastaddr = \"239.1.1.1\"\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"10.0.0.1\"\nring1_addr = \"10.1.0.1\"\n";
    let e = mistake(text, 11, "nodelist.node[0].ring1_addr");
    assert!(
        e.to_string().contains("not used by transport \"udp\""),
        "{e}"
    );
    assert!(e.to_string().contains("rrp_interface"), "{e}");
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> u32 {
    1 + text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the text")) as u32
}

/// Two multicast networks (corosync's interface { ringnumber mcastaddr }), passive mode.
const MCAST2: &str = r#"[totem]
nodeid = 1
transport = "udp"
secauth = false
rrp_mode = "passive"

[totem.interface]
bindnetaddr = "10.0.0.1"
mcastaddr = "239.192.0.1"
mcastport = 5405

[[totem.rrp_interface]]
ringnumber = 1
bindnetaddr = "10.1.0.1"
mcastaddr = "239.192.0.2"
"#;

#[test]
fn multicast_networks_each_have_their_own_group_or_port() {
    use dataplane::udp::Mode;
    let c = Config::from_str(MCAST2, "good.toml").unwrap();
    assert_eq!(c.networks(), 2);
    assert_eq!(c.rrp_config().networks, 2);
    assert_eq!(c.transport_on(1), ais::config::TransportKind::Udp);
    let net1 = c.udp_config_on(1);
    assert_eq!(net1.bind, "10.1.0.1:5404".parse().unwrap());
    assert_eq!(net1.mtu, c.udp_config().mtu);
    assert!(
        matches!(net1.mode, Mode::Multicast { group, port: 5405, ttl: 1, loopback: false, .. }
            if group == "239.192.0.2".parse::<std::net::IpAddr>().unwrap()),
        "{:?}",
        net1.mode
    );
    assert!(matches!(
        c.udp_config_on(0).mode,
        Mode::Multicast { port: 5405, .. }
    ));
    // Multicast members are learned from their frames, on every network.
    assert!(c.members_on(1).is_empty());
    // The example file.
    let ex = Config::from_file(&configs_dir().join("redundant-rings-multicast.toml")).unwrap();
    assert_eq!(ex.networks(), 2);
    assert_eq!(
        ex.udp_config_on(1).bind,
        "192.168.11.1:5404".parse().unwrap()
    );
    // The same group on another port is another network.
    let text = MCAST2.replace(
        "mcastaddr = \"239.192.0.2\"",
        "mcastaddr = \"239.192.0.1\"\nmcastport = 5407",
    );
    let c = Config::from_str(&text, "good.toml").unwrap();
    assert!(matches!(
        c.udp_config_on(1).mode,
        Mode::Multicast { port: 5407, .. }
    ));
    assert_eq!(c.udp_config_on(1).bind, "10.1.0.1:5406".parse().unwrap());
    // Three networks.
    let text = format!(
        "{MCAST2}\n[[totem.rrp_interface]]\nringnumber = 2\nbindnetaddr = \"10.2.0.1\"\nmcastaddr = \"239.192.0.3\"\n"
    );
    assert_eq!(Config::from_str(&text, "good.toml").unwrap().networks(), 3);

    // The same group and port as network 0 (the port left to network 0's).
    let text = MCAST2.replace("\"239.192.0.2\"", "\"239.192.0.1\"");
    let e = mistake(&text, 15, "totem.rrp_interface[0].mcastaddr");
    assert!(e.to_string().contains("network 0's too"), "{e}");
    assert!(e.to_string().contains("own group or port"), "{e}");
    // ... with the port given: the port is named.
    let text = MCAST2.replace(
        "mcastaddr = \"239.192.0.2\"",
        "mcastaddr = \"239.192.0.1\"\nmcastport = 5405",
    );
    let e = mistake(&text, 16, "totem.rrp_interface[0].mcastport");
    assert!(e.to_string().contains("own group or port"), "{e}");
    // Two entries on one group and port.
    let text = format!(
        "{MCAST2}\n[[totem.rrp_interface]]\nringnumber = 2\nbindnetaddr = \"10.2.0.1\"\nmcastaddr = \"239.192.0.2\"\n"
    );
    let e = mistake(&text, 20, "totem.rrp_interface[1].mcastaddr");
    assert!(e.to_string().contains("network 1's too"), "{e}");
    // The same local socket as network 0.
    let text = MCAST2.replace("\"10.1.0.1\"", "\"10.0.0.1\"");
    let e = mistake(&text, 14, "totem.rrp_interface[0].bindnetaddr");
    assert!(e.to_string().contains("network 0's too"), "{e}");
    // No group, no local address, not a group.
    let text = MCAST2.replace("mcastaddr = \"239.192.0.2\"\n", "");
    let e = mistake(&text, 13, "totem.rrp_interface[0].mcastaddr");
    assert!(
        e.to_string().contains("required for multicast network 1"),
        "{e}"
    );
    let text = MCAST2.replace("bindnetaddr = \"10.1.0.1\"\n", "");
    let e = mistake(&text, 13, "totem.rrp_interface[0].bindnetaddr");
    assert!(e.to_string().contains("required"), "{e}");
    let text = MCAST2.replace("\"239.192.0.2\"", "\"10.9.9.9\"");
    let e = mistake(&text, 15, "totem.rrp_interface[0].mcastaddr");
    assert!(e.to_string().contains("not a multicast address"), "{e}");
    // A gap: network 2 without network 1.
    let text = MCAST2.replace("ringnumber = 1", "ringnumber = 2");
    let e = mistake(&text, 3, "totem.rrp_interface");
    assert!(e.to_string().contains("network 1 has no"), "{e}");
    // A DPDK or unicast network on a multicast ring.
    let text = MCAST2.replace("ringnumber = 1", "ringnumber = 1\ntransport = \"dpdk\"");
    let e = mistake(&text, 14, "totem.rrp_interface[0].transport");
    assert!(e.to_string().contains("every"), "{e}");
    // Two multicast networks need a mode.
    let text = MCAST2.replace("\"passive\"", "\"none\"");
    let e = mistake(&text, 5, "totem.rrp_mode");
    assert!(
        e.to_string()
            .contains("rrp_interface]] entries give 2 networks"),
        "{e}"
    );
}

/// GOOD with a second network whose transport and DPDK settings are `extra` (an
/// `[[totem.rrp_interface]]` entry's keys), network 0 on `transport`.
fn mixed(transport: &str, extra: &str) -> String {
    let mut t = two_networks("active").replace(
        "transport = \"udpu\"",
        &format!("transport = \"{transport}\""),
    );
    t += "\n[dpdk]\nport = \"net_af_packet0\"\neal_args = [\"--no-huge\", \"--vdev=net_af_packet0,iface=eth0\", \"--vdev=net_af_packet1,iface=eth1\"]\n";
    t += &format!("\n[[totem.rrp_interface]]\nringnumber = 1\n{extra}");
    t
}

#[test]
fn a_node_mixes_dpdk_and_kernel_udp_networks() {
    use ais::config::TransportKind::{Dpdk, Udpu};
    // The ATCA case: network 0 (the base interface) through DPDK, network 1 through the
    // kernel.
    let c = Config::from_str(&mixed("dpdk", "transport = \"udpu\"\n"), "good.toml").unwrap();
    assert_eq!(
        (c.networks(), c.transport_on(0), c.transport_on(1)),
        (2, Dpdk, Udpu)
    );
    assert_eq!(c.dpdk_port_on(0), "net_af_packet0");
    assert_eq!(c.udp_config_on(1).bind, "10.1.0.1:5405".parse().unwrap());
    assert_eq!(c.members_on(1).len(), 3);
    // The other way round.
    let c = Config::from_str(
        &mixed(
            "udpu",
            "transport = \"dpdk\"\ndpdk_port = \"net_af_packet1\"\n",
        ),
        "good.toml",
    )
    .unwrap();
    assert_eq!((c.transport_on(0), c.transport_on(1)), (Udpu, Dpdk));
    assert_eq!(c.dpdk_port_on(1), "net_af_packet1");
    // DPDK on both networks: two ports of one EAL.
    let c = Config::from_str(
        &mixed("dpdk", "dpdk_port = \"net_af_packet1\"\n"),
        "good.toml",
    )
    .unwrap();
    assert_eq!((c.transport_on(0), c.transport_on(1)), (Dpdk, Dpdk));
    assert_eq!(
        (c.dpdk_port_on(0), c.dpdk_port_on(1)),
        ("net_af_packet0", "net_af_packet1")
    );

    // A DPDK network without its port.
    let text = mixed("dpdk", "");
    let e = mistake(
        &text,
        line_of(&text, "ringnumber = 1"),
        "totem.rrp_interface[0].dpdk_port",
    );
    assert!(e.to_string().contains("DPDK network"), "{e}");
    // Network 0's port again.
    let text = mixed("dpdk", "dpdk_port = \"net_af_packet0\"\n");
    let e = mistake(
        &text,
        line_of(&text, "dpdk_port ="),
        "totem.rrp_interface[0].dpdk_port",
    );
    assert!(e.to_string().contains("network 0's DPDK port too"), "{e}");
    // A DPDK port on a kernel network.
    let text = mixed(
        "dpdk",
        "transport = \"udpu\"\ndpdk_port = \"net_af_packet1\"\n",
    );
    let e = mistake(
        &text,
        line_of(&text, "dpdk_port ="),
        "totem.rrp_interface[0].dpdk_port",
    );
    assert!(
        e.to_string()
            .contains("only for a network with transport \"dpdk\""),
        "{e}"
    );
    // Multicast beside unicast or DPDK.
    let text = mixed("dpdk", "transport = \"udp\"\n");
    let e = mistake(
        &text,
        line_of(&text, "transport = \"udp\""),
        "totem.rrp_interface[0].transport",
    );
    assert!(e.to_string().contains("multicast networks need"), "{e}");
    // A group on a unicast ring.
    let text = mixed("udpu", "mcastaddr = \"239.192.0.2\"\n");
    let e = mistake(
        &text,
        line_of(&text, "mcastaddr ="),
        "totem.rrp_interface[0].mcastaddr",
    );
    assert!(e.to_string().contains("only for transport \"udp\""), "{e}");
}
