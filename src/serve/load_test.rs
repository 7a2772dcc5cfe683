//! `finetune bench-serve`: a load test of the HTTP server on loopback. It starts the server in
//! process, sends a fixed number of `POST /predict` requests from N concurrent clients (blocking
//! HTTP, one thread per client), and reports requests/s, p50/p99 latency and errors — once with
//! dynamic batching and once with batch size 1, so the speed-up batching buys is measured in the
//! same run on the same machine.
use crate::error::{Error, Result};
use crate::eval::stats::percentile;
use crate::infer::Input;
use crate::serve::{app, ServeConfig, Servable};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub max_batch_size: usize,
    pub clients: usize,
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A running in-process server; dropping it shuts it down.
struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start<M: Servable>(model: M, cfg: ServeConfig) -> Result<Running> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = addr_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string()));
            let _ = axum::serve(listener, app(model, cfg)).with_graceful_shutdown(async { let _ = stop_rx.await; }).await;
        });
    });
    let addr = addr_rx.recv().map_err(|_| Error::Invalid("server thread died".into()))?.map_err(Error::Invalid)?;
    Ok(Running { addr, stop: Some(stop), thread: Some(thread) })
}

/// Sends `requests` single-input requests from `clients` threads, inputs taken round-robin.
pub fn run<M: Servable>(model: M, cfg: ServeConfig, inputs: &[Input], clients: usize, requests: usize) -> Result<LoadResult> {
    if inputs.is_empty() || clients == 0 {
        return Err(Error::Invalid("load test needs inputs and at least one client".into()));
    }
    let max_batch_size = cfg.max_batch_size;
    let server = start(model, cfg)?;
    let url = format!("http://{}/predict", server.addr);
    let bodies: Arc<Vec<String>> = Arc::new(
        inputs.iter().map(|i| serde_json::json!({ "text": i.text, "text_pair": i.text_pair }).to_string()).collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let errors = Arc::new(AtomicUsize::new(0));
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
    // Warm-up: one request so model initialisation is not timed.
    agent.post(&url).set("content-type", "application/json").send_string(&bodies[0]).map_err(|e| Error::Invalid(format!("warm-up request failed: {e}")))?;
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (agent, url, bodies, next, latencies, errors) =
                (agent.clone(), url.clone(), Arc::clone(&bodies), Arc::clone(&next), Arc::clone(&latencies), Arc::clone(&errors));
            std::thread::spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= requests {
                    break;
                }
                let t = Instant::now();
                let ok = agent
                    .post(&url)
                    .set("content-type", "application/json")
                    .send_string(&bodies[k % bodies.len()])
                    .ok()
                    .and_then(|r| r.into_string().ok())
                    .is_some_and(|s| s.contains("\"logits\""));
                if ok {
                    latencies.lock().expect("no poisoning").push(t.elapsed().as_secs_f64() * 1e3);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| Error::Invalid("client thread panicked".into()))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(server);
    let mut lat = latencies.lock().expect("no poisoning").clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(LoadResult {
        max_batch_size,
        clients,
        requests,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        requests_per_second: requests as f64 / seconds,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
    })
}
