//! Every shelf model example in `configs/` (`shelf*.toml`) parses and passes its checks.

use std::path::{Path, PathBuf};

use shelf_manager::model::Config;

fn shelf_models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("configs/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("shelf") && name.ends_with(".toml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_shelf_model_parses() {
    let files = shelf_models();
    assert!(!files.is_empty(), "configs/ holds no shelf*.toml example");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let config =
            Config::from_str(&text, &file.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.board.is_empty(), "{}", file.display());
        assert!(!config.feed.is_empty(), "{}", file.display());
    }
}

#[test]
fn the_sim_shelf_feeds_cover_two_boards_at_full_power() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml");
    let config =
        Config::from_str(&std::fs::read_to_string(path).unwrap(), "shelf-sim.toml").unwrap();
    assert_eq!(config.board.len(), 4);
    let full: Vec<u32> = config
        .board
        .iter()
        .map(|b| b.watts_at(b.desired_level()))
        .collect();
    for feed in &config.feed {
        let mut sorted = full.clone();
        sorted.sort_unstable();
        assert!(sorted[0] + sorted[1] <= feed.max_watts, "{}", feed.name);
        assert!(
            sorted[0] + sorted[1] + sorted[2] > feed.max_watts,
            "{}",
            feed.name
        );
    }
}
