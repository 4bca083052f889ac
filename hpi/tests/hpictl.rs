//! The operator tool against the simulated shelf.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Sim;

/// A credentials file under target/tmp, removed on drop.
struct CredFile(PathBuf);

impl Drop for CredFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl std::ops::Deref for CredFile {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

fn cred_file(sim: &Sim, mode: u32) -> CredFile {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hpictl-{}-{mode:o}.cred", sim.port));
    std::fs::write(&p, "user = admin\npassword = admin\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    CredFile(p)
}

fn hpictl(sim: &Sim, cred: &PathBuf, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hpictl"));
    c.args(["--port", &sim.port.to_string(), "--credentials"])
        .arg(cred)
        .args(args);
    c
}

#[test]
fn list_sensors_inventory_and_watch() {
    let sim = Sim::start();
    let cred = cred_file(&sim, 0o600);
    let out = hpictl(&sim, &cred, &["list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "Blade1         ACTIVE               M4",
        "Blade3         INACTIVE             M1",
        "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{PICMG_FRONT_BLADE,0}",
        "ShMC",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let out = hpictl(&sim, &cred, &["sensors"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "Temp         40  thresholds up minor/major/critical Some(60.0)/Some(75.0)/Some(90.0)"
        ),
        "{text}"
    );
    let out = hpictl(&sim, &cred, &["inventory"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PRODUCT_NAME     Blade2"), "{text}");

    // watch while the sim moves Blade3 to M2
    let child = hpictl(&sim, &cred, &["watch", "--seconds", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sim.hs(0x86, 2, 2);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Blade3")
            && text.contains("hot-swap INACTIVE -> INSERTION_PENDING (OperatorInit"),
        "{text}"
    );
}

#[test]
fn refuses_a_readable_credentials_file_and_reports_a_wrong_password() {
    let sim = Sim::start();
    let cred = cred_file(&sim, 0o644);
    let out = hpictl(&sim, &cred, &["ping"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("chmod 600"), "{err}");
    let p =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hpictl-{}-bad.cred", sim.port));
    std::fs::write(&p, "user = admin\npassword = nope\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = hpictl(&sim, &p, &["list"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("authentication as user \"admin\""), "{err}");
    assert!(!err.contains("nope"), "{err}");
    let ok = cred_file(&sim, 0o600);
    let out = hpictl(&sim, &ok, &["ping"]).output().unwrap();
    assert!(out.status.success());
}
