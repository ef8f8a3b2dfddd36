//! The `schedbox` command line.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if args.command.dies_on_closed_stdout() {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread or
        // pipe exists; no handler runs. `plan … | head` then ends quietly, as a
        // Unix filter does, instead of panicking on the closed pipe.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The chain can carry a component's own text (its run error, a trap's stderr).
            eprintln!("error: {}", schedbox::untrusted::escape(&cli::error_text(&e.error)));
            ExitCode::from(e.code)
        }
    }
}
