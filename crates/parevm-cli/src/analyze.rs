//! `parevm analyze` (being written).

use clap::Args;
use std::process::ExitCode;

/// Arguments of `parevm analyze`.
#[derive(Args)]
pub struct AnalyzeArgs {}

pub fn run(_args: AnalyzeArgs) -> Result<ExitCode, String> {
    Err("`parevm analyze` is not implemented yet".into())
}
