//! Placeholder until the server binary lands.
fn main() {}
