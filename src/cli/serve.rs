//! `finetune serve` (HTTP with dynamic batching) and `finetune bench-serve` (a loopback load test
//! of that server, batched against batch size 1), for sequence and token classifiers.
use super::flags::ModelCli;
use crate::error::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct BatchingCli {
    /// Most inputs run together; requests wait at most --max-wait-ms to fill a batch.
    #[arg(long, default_value_t = 32, value_parser = super::flags::positive)]
    pub max_batch_size: usize,
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    #[arg(long, default_value_t = 20_000)]
    pub max_input_chars: usize,
    /// Seconds a request body may take to arrive (then 408).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_body_read: u64,
}

impl BatchingCli {
    fn config(&self, max_batch_size: usize) -> crate::serve::ServeConfig {
        crate::serve::ServeConfig {
            max_batch_size,
            max_wait: std::time::Duration::from_millis(self.max_wait_ms),
            max_body_bytes: self.max_body_bytes,
            max_input_chars: self.max_input_chars,
            body_read_timeout: std::time::Duration::from_secs(self.timeout_body_read),
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeCli {
    #[command(flatten)]
    pub model: ModelCli,
    /// Address to bind; loopback unless you say otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub batching: BatchingCli,
    /// Seconds a connection may take to send a request head, idle keep-alive included.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_header_read: u64,
    /// Most open connections; the next one gets 503 with Retry-After.
    #[arg(long, default_value_t = 512, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit_concurrency: usize,
    /// Seconds a shutdown waits for open requests.
    #[arg(long, default_value_t = 30)]
    pub timeout_graceful_shutdown: u64,
    /// Host names clients may use (comma-separated; `*` for any). Default: the names of --host,
    /// so a web page cannot reach a loopback server through a name of its own (DNS rebinding).
    #[arg(long)]
    pub allowed_hosts: Option<String>,
}

#[derive(Args, Debug)]
pub struct BenchServeCli {
    #[command(flatten)]
    pub model: ModelCli,
    /// Inputs sent round-robin (same formats as `predict --input`).
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 32, value_parser = super::flags::positive)]
    pub clients: usize,
    #[arg(long, default_value_t = 2000, value_parser = super::flags::positive)]
    pub requests: usize,
    #[command(flatten)]
    pub batching: BatchingCli,
}

/// Serves until SIGINT/SIGTERM: a token classifier's entities, or a sequence classifier's labels.
pub fn serve(sv: ServeCli) -> Result<()> {
    let limits = crate::serve::http::Limits {
        header_read_timeout: std::time::Duration::from_secs(sv.timeout_header_read),
        limit_concurrency: sv.limit_concurrency,
        graceful_shutdown_timeout: std::time::Duration::from_secs(sv.timeout_graceful_shutdown),
    };
    let hosts = sv.allowed_hosts.as_deref().map(crate::serve::http::AllowedHosts::parse);
    let cfg = sv.batching.config(sv.batching.max_batch_size);
    let addr = std::net::SocketAddr::new(sv.host, sv.port);
    if crate::infer::ner::is_token_classifier(&sv.model.model) {
        let (model, _) = crate::infer::ner::NerModel::load(&sv.model.model, None, sv.model.device()?)?;
        crate::serve::serve(model, cfg, limits, hosts, addr)
    } else {
        crate::serve::serve(sv.model.load()?, cfg, limits, hosts, addr)
    }
}

/// Runs the load test at `--max-batch-size` and at 1, and prints the table and the speed-up.
pub fn bench_serve(b: BenchServeCli) -> Result<()> {
    let results = if crate::infer::ner::is_token_classifier(&b.model.model) {
        let device = b.model.device()?;
        let inputs = crate::infer::input::read(&b.input, None)?;
        load_tests(&b, &inputs, || Ok(crate::infer::ner::NerModel::load(&b.model.model, None, device)?.0))?
    } else {
        let inputs = crate::infer::input::read(&b.input, None).or_else(|_| crate::infer::input::read(&b.input, b.model.load()?.task.as_deref()))?;
        load_tests(&b, &inputs, || b.model.load())?
    };
    println!("| max batch | clients | requests | errors | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|");
    for r in &results {
        println!("| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |", r.max_batch_size, r.clients, r.requests, r.errors, r.requests_per_second, r.p50_ms, r.p99_ms);
    }
    println!("dynamic batching speed-up over batch size 1: {:.2}x", results[0].requests_per_second / results[1].requests_per_second);
    println!("{}", serde_json::to_string(&results).expect("JSON serialises"));
    Ok(())
}

/// One load test per batch size, each on a freshly loaded model.
fn load_tests<M: crate::serve::Servable>(b: &BenchServeCli, rows: &[crate::infer::input::Row], load: impl Fn() -> Result<M>) -> Result<Vec<crate::serve::load_test::LoadResult>> {
    let inputs: Vec<crate::infer::Input> = rows.iter().map(|r| r.input.clone()).collect();
    let mut results = Vec::new();
    for batch in [b.batching.max_batch_size, 1] {
        let r = crate::serve::load_test::run(load()?, b.batching.config(batch), &inputs, b.clients, b.requests)?;
        eprintln!("max_batch_size {batch}: {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms, {} errors", r.requests_per_second, r.p50_ms, r.p99_ms, r.errors);
        results.push(r);
    }
    Ok(results)
}
