//! The `finetune` binary: parse arguments, set up logging, hand over to the library.
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    finetune::run_info::pin_reproducible_math();
    // Colours only for a person at a terminal: a log redirected to a file stays plain text, and
    // NO_COLOR (no-color.org: any non-empty value) turns them off everywhere.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .init();
    match finetune::cli::run(finetune::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // One line: every error's message already names the file, field and expectation, and its
        // cause (an I/O error's text is part of it). No backtrace under a user's error, whatever
        // RUST_BACKTRACE says: it points into this function, not at the fault; panics keep theirs.
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
