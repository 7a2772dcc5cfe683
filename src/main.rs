//! The `finetune` binary: parse arguments, set up logging, hand over to the library.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    finetune::cli::run(finetune::cli::Cli::parse())?;
    Ok(())
}
