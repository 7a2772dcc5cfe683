//! `finetune fetch`: put a model into the Hugging Face cache.
use crate::error::Result;
use crate::model::hub::DEFAULT_MODEL;
use clap::Args;

#[derive(Args, Debug)]
pub struct FetchCli {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
}

/// Fetches the model and prints its directory.
pub fn run(f: FetchCli) -> Result<()> {
    let dir = crate::model::hub::fetch(&f.model)?;
    println!("{}", dir.display());
    Ok(())
}
