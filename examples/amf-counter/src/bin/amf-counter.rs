//! The `amf-counter` program: the example 2N service as an AMF component (see the crate
//! documentation of `amf_counter`).

use clap::Parser;

fn main() -> anyhow::Result<()> {
    amf_counter::init_logging();
    amf_counter::run(amf_counter::Args::parse())
}
