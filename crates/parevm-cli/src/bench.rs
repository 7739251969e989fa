//! `parevm bench` (being written).

use clap::Args;
use std::process::ExitCode;

/// Arguments of `parevm bench`.
#[derive(Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> Result<ExitCode, String> {
    Err("`parevm bench` is not implemented yet".into())
}
