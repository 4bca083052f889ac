//! `shelfd`: the shelf manager daemon (the program is [`shelf_manager::shelfd`], so that other
//! programs, such as `bench`, can run it as a subcommand).

fn main() -> std::process::ExitCode {
    shelf_manager::shelfd::main_with(<shelf_manager::shelfd::Args as clap::Parser>::parse())
}
