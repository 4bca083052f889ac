//! `aisexec`: the per-blade executive (see `ais::executive` and `aisexec --help`).

fn main() -> std::process::ExitCode {
    ais::executive::main()
}
