//! Writing the command's report to stdout. A reader may stop reading
//! early (`parevm replay … | head`): `println!` then panics on the closed
//! pipe, where [`outln!`] ends the command quietly, as Unix tools end on
//! SIGPIPE. Any other failure to write (a full disk behind a redirection)
//! is an error, with a message and a non-zero exit.

use std::io::{self, Write};

/// `println!`, ending the command instead of panicking when stdout cannot
/// be written (see the module docs).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes `args` and a newline to stdout; exits the process if it cannot:
/// quietly (status 0) if the reader is gone, with an error otherwise.
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(error) = written {
        if error.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {error}");
        std::process::exit(1);
    }
}
