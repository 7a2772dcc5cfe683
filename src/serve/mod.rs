//! `finetune serve`: an HTTP server (axum + tokio) over a fine-tuned model loaded once: a sequence
//! classifier (labels, scores) or a token classifier (entities); see `servable`.
//!
//! Handlers parse and tokenise requests on the async workers; one model thread owns the weights
//! and runs dynamic batching: it takes the first waiting request, keeps collecting requests until
//! `max_batch_size` inputs or `max_wait` has passed, runs them as one length-sorted batch, and hands
//! each request its own predictions. Bad input gets a 4xx JSON error, never a crash. A model call
//! that fails (even by panicking inside libtorch) fails only the requests it served — the batch is
//! retried one request at a time so the culprit alone gets the 500 — and the worker keeps serving;
//! `/health` answers 503 if the worker is gone, so an orchestrator restarts the process. The queue
//! is bounded: when it is full a request gets 503 with `Retry-After` at once, and requests whose
//! clients have gone away are dropped before the model spends time on them. A body that does not
//! arrive within `body_read_timeout` gets 408; the connection limits are `http`'s. A body over
//! `max_body_bytes` gets 413 at once when its `Content-Length` says so and the client waits for
//! `100 Continue`; otherwise the rest is read and dropped (up to `LINGER_BYTES`) before the 413, so
//! that clients which send a whole body before reading (Python's urllib, requests) read the status
//! rather than a reset connection.
pub mod http;
pub mod load_test;
pub mod servable;

use crate::error::{Error, Result};
use crate::infer::Input;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
pub use servable::Servable;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub max_batch_size: usize,
    pub max_wait: Duration,
    pub max_body_bytes: usize,
    /// Longest accepted text (characters, per field); longer inputs get 413.
    pub max_input_chars: usize,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
}

struct Job<M: Servable> {
    items: Vec<M::Item>,
    reply: oneshot::Sender<Result<Vec<M::Output>>>,
}

/// Shared by the handlers. The model itself lives on its own thread (libtorch tensors may move
/// between threads but not be shared), so handlers only hold the tokenizer.
struct AppState<M: Servable> {
    jobs: mpsc::SyncSender<Job<M>>,
    /// False once the model thread has ended.
    alive: Arc<AtomicBool>,
    preparer: M::Preparer,
    cfg: ServeConfig,
    metadata: Value,
}

/// Predictions for `features`, or the error — a panic inside the model call included — as a
/// message.
fn run_model<M: Servable>(model: &M, items: &[M::Item], batch_size: usize) -> std::result::Result<Vec<M::Output>, String> {
    match catch_unwind(AssertUnwindSafe(|| model.run(items, batch_size))) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("the model failed on this input: {}", what.unwrap_or_else(|| "unknown error".into()).lines().next().unwrap_or_default()))
        }
    }
}

/// Clears the liveness flag when the model thread ends, however it ends.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The dynamic-batching loop of the model thread; returns when every sender is gone.
fn batch_loop<M: Servable>(model: M, jobs: mpsc::Receiver<Job<M>>, cfg: ServeConfig, alive: Arc<AtomicBool>) {
    let _alive = Alive(alive);
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut n = batch[0].items.len();
        let deadline = Instant::now() + cfg.max_wait;
        while n < cfg.max_batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => {
                    n += job.items.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        // A client that has disconnected no longer waits for its answer.
        batch.retain(|j| !j.reply.is_closed());
        let items: Vec<M::Item> = batch.iter().flat_map(|j| j.items.iter().cloned()).collect();
        match run_model(&model, &items, cfg.max_batch_size.max(1)) {
            Ok(mut preds) => {
                for job in batch {
                    let rest = preds.split_off(job.items.len());
                    let _ = job.reply.send(Ok(preds));
                    preds = rest;
                }
            }
            // One request may have broken the batch: answer each on its own.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let r = run_model(&model, &job.items, cfg.max_batch_size.max(1)).map_err(Error::Invalid);
                    let _ = job.reply.send(r);
                }
            }
            Err(msg) => {
                for job in batch {
                    let _ = job.reply.send(Err(Error::Invalid(msg.clone())));
                }
            }
        }
    }
}

/// Serialised directly (not through `json!`) so f32 logits keep their exact shortest form.
#[derive(serde::Serialize)]
struct Batch<T> {
    predictions: Vec<T>,
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into(), "status": status.as_u16() }))).into_response()
}

/// 405 with a JSON body like every other error (axum's own has none), and the `Allow` header.
fn method_not_allowed(req: &Request<Body>, allow: &'static str) -> Response {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, format!("{} {} is not served: use {allow}", req.method(), req.uri().path()));
    r.headers_mut().insert(axum::http::header::ALLOW, axum::http::HeaderValue::from_static(allow));
    r
}

/// A request body: one input, or `{"inputs": [...]}` whose items are input objects or strings.
/// Errors are (status, message) pairs, made into JSON responses by the caller.
fn parse_inputs(body: &[u8], cfg: &ServeConfig) -> std::result::Result<(Vec<Input>, bool), (StatusCode, String)> {
    let v: Value = serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m);
    let (inputs, batched) = match v.get("inputs") {
        Some(Value::Array(items)) => {
            let inputs = items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(Input { text: s.clone(), text_pair: None }),
                    Value::Object(_) => serde_json::from_value::<Input>(item.clone()).map_err(|e| unprocessable(format!("inputs[{i}]: {e}"))),
                    other => Err(unprocessable(format!("inputs[{i}]: expected a string or {{\"text\": string, \"text_pair\"?: string}}, found {other}"))),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            (inputs, true)
        }
        Some(other) => return Err(unprocessable(format!("`inputs` must be an array, found {other}"))),
        // serde would read a struct from an array too (["a", "b"] as a text pair): objects only.
        None if !v.is_object() => return Err(unprocessable(format!("expected {{\"text\": string, \"text_pair\"?: string}} or {{\"inputs\": [...]}}, found {}", if v.is_array() { "an array (send a batch as {\"inputs\": [...]})".to_string() } else { v.to_string() }))),
        None => (vec![serde_json::from_value::<Input>(v).map_err(|e| unprocessable(format!("expected {{\"text\": string, \"text_pair\"?: string}} or {{\"inputs\": [...]}}: {e}")))?], false),
    };
    if inputs.is_empty() {
        return Err(unprocessable("`inputs` is empty; send at least one input".into()));
    }
    if inputs.len() > cfg.max_batch_size {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("{} inputs in one request; the limit is {}", inputs.len(), cfg.max_batch_size)));
    }
    for (i, inp) in inputs.iter().enumerate() {
        if let Some(field) = inp.empty_field() {
            return Err(unprocessable(format!("input {i} has an empty `{field}`")));
        }
        let chars = inp.text.chars().count().max(inp.text_pair.as_ref().map_or(0, |t| t.chars().count()));
        if chars > cfg.max_input_chars {
            return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("input {i} has {chars} characters; the limit is {}", cfg.max_input_chars)));
        }
    }
    Ok((inputs, batched))
}

/// Most bytes of an oversized body read and dropped before its 413 (a lingering close, as nginx
/// does): a connection closed with the client's input unread is reset by the kernel, and the reset
/// can destroy the answer before the client reads it. Past this the connection is closed anyway.
const LINGER_BYTES: usize = 64 << 20;

enum BodyRead {
    Complete(Bytes),
    TooLarge,
    Broken,
}

/// A request body of at most `max` bytes; past that, the rest read and dropped (up to
/// [`LINGER_BYTES`]).
async fn read_body(mut body: Body, max: usize) -> BodyRead {
    use http_body_util::BodyExt;
    let (mut kept, mut dropped) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return BodyRead::Broken };
        let Ok(data) = frame.into_data() else { continue };
        if dropped > 0 || kept.len() + data.len() > max {
            kept = Vec::new();
            dropped += data.len();
            if dropped > LINGER_BYTES {
                break;
            }
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if dropped > 0 {
        BodyRead::TooLarge
    } else {
        BodyRead::Complete(kept.into())
    }
}

async fn predict<M: Servable>(State(state): State<Arc<AppState<M>>>, req: Request<Body>) -> Response {
    let max = state.cfg.max_body_bytes;
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {max} bytes"));
    let declared = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let over = declared.is_some_and(|n| n > max as u64);
    // A client that waits for `100 Continue` has sent nothing yet: answer before it does (hyper
    // sends the 100 only once the body is read).
    if over && req.headers().get(axum::http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        return too_large();
    }
    let body: Bytes = match tokio::time::timeout(state.cfg.body_read_timeout, read_body(req.into_body(), max)).await {
        Ok(BodyRead::Complete(b)) => b,
        Ok(BodyRead::TooLarge) => return too_large(),
        Ok(BodyRead::Broken) => return error(StatusCode::BAD_REQUEST, "the request body broke off"),
        Err(_) if over => return too_large(),
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {:?}", state.cfg.body_read_timeout)),
    };
    let (inputs, batched) = match parse_inputs(&body, &state.cfg) {
        Ok(x) => x,
        Err((status, msg)) => return error(status, msg),
    };
    let items = match M::prepare(&state.preparer, &inputs) {
        Ok(f) => f,
        Err(msg) => return error(StatusCode::UNPROCESSABLE_ENTITY, msg),
    };
    let (tx, rx) = oneshot::channel();
    match state.jobs.try_send(Job { items, reply: tx }) {
        Ok(()) => {}
        Err(mpsc::TrySendError::Full(_)) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "the server is at capacity; retry shortly");
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            return r;
        }
        Err(mpsc::TrySendError::Disconnected(_)) => return error(StatusCode::SERVICE_UNAVAILABLE, "the model worker has stopped"),
    }
    match rx.await {
        Ok(Ok(predictions)) if batched => Json(Batch { predictions }).into_response(),
        Ok(Ok(mut preds)) => Json(preds.remove(0)).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the model worker has stopped"),
    }
}

/// 200 while the model thread serves, 503 once it is gone.
async fn health<M: Servable>(State(state): State<Arc<AppState<M>>>) -> Response {
    health_response(&state.alive)
}

fn health_response(alive: &AtomicBool) -> Response {
    if alive.load(Ordering::SeqCst) {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "the model worker has stopped")
    }
}

/// The application: routes, JSON errors for unknown routes, and the model thread behind them.
pub fn app<M: Servable>(model: M, cfg: ServeConfig) -> Router {
    let (tx, rx) = mpsc::sync_channel::<Job<M>>(cfg.max_batch_size.max(1) * 64);
    let mut metadata = model.metadata();
    let preparer = model.preparer();
    let c = cfg.clone();
    let alive = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&alive);
    std::thread::Builder::new().name("model".into()).spawn(move || batch_loop(model, rx, c, flag)).expect("spawn model thread");
    metadata["max_batch_size"] = json!(cfg.max_batch_size);
    metadata["max_wait_ms"] = json!(cfg.max_wait.as_secs_f64() * 1e3);
    metadata["max_body_bytes"] = json!(cfg.max_body_bytes);
    metadata["oversized_body_bytes_drained"] = json!(LINGER_BYTES);
    metadata["max_input_chars"] = json!(cfg.max_input_chars);
    metadata["body_read_timeout_secs"] = json!(cfg.body_read_timeout.as_secs_f64());
    metadata["max_queued_requests"] = json!(cfg.max_batch_size.max(1) * 64);
    let state = Arc::new(AppState { jobs: tx, alive, preparer, cfg, metadata });
    Router::new()
        .route("/predict", post(predict::<M>).fallback(|req: Request<Body>| async move { method_not_allowed(&req, "POST") }))
        .route("/health", get(health::<M>).fallback(|req: Request<Body>| async move { method_not_allowed(&req, "GET") }))
        .route(
            "/metadata",
            get(|State(s): State<Arc<AppState<M>>>| async move { Json(s.metadata.clone()) }).fallback(|req: Request<Body>| async move { method_not_allowed(&req, "GET") }),
        )
        .fallback(|req: Request<Body>| async move { error(StatusCode::NOT_FOUND, format!("no route for {} {}", req.method(), req.uri().path())) })
        .with_state(state)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish within the shutdown deadline.
/// Requests must name the server in `Host`: `allowed_hosts`, else the names of `addr`.
pub fn serve<M: Servable>(model: M, cfg: ServeConfig, limits: http::Limits, allowed_hosts: Option<http::AllowedHosts>, addr: std::net::SocketAddr) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    let hosts = Arc::new(allowed_hosts.unwrap_or_else(|| http::AllowedHosts::for_bind(addr.ip())));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Invalid(format!("cannot bind {addr}: {e}")))?;
        let local = listener.local_addr().map_err(|e| Error::Invalid(e.to_string()))?;
        eprintln!("serving {} on http://{local} (POST /predict, GET /health, GET /metadata)", model.model_dir().display());
        let app = app(model, cfg).layer(axum::middleware::from_fn(move |req, next| http::check_host(Arc::clone(&hosts), req, next)));
        http::serve(listener, app, limits, shutdown_signal()).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the model thread ends — a panic that escaped, say — `/health` turns to 503.
    #[test]
    fn health_follows_the_model_thread() {
        let alive = Arc::new(AtomicBool::new(true));
        assert_eq!(health_response(&alive).status(), StatusCode::OK);
        let flag = Arc::clone(&alive);
        let worker = std::thread::spawn(move || {
            let _alive = Alive(flag);
            panic!("the worker dies");
        });
        assert!(worker.join().is_err());
        assert_eq!(health_response(&alive).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
