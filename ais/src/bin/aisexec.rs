//! `aisexec`: the per-blade executive (see `ais::aisexec` and `aisexec --help`).

fn main() -> std::process::ExitCode {
    ais::aisexec::main()
}
