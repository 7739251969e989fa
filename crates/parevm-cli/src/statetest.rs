//! `parevm statetest` (being written).

use clap::Args;
use std::process::ExitCode;

/// Arguments of `parevm statetest`.
#[derive(Args)]
pub struct StatetestArgs {}

pub fn run(_args: StatetestArgs) -> Result<ExitCode, String> {
    Err("`parevm statetest` is not implemented yet".into())
}
