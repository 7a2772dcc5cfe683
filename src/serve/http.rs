//! The connection layer under `finetune serve`: what `axum::serve` leaves open. A client gets a
//! bounded time to send its request head (a slow or silent connection is closed, so it cannot hold
//! a slot), at most `limit_concurrency` connections are open at once (the next one is answered 503
//! with `Retry-After` and closed, as uvicorn's `--limit-concurrency` does), every request's `Host`
//! must name this server (a DNS-rebinding page cannot reach a loopback server through a name of
//! its own), and a shutdown waits for open requests only until a deadline.
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a connection may take to send a request head, idle keep-alive time included.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub limit_concurrency: usize,
    /// How long a shutdown waits for open requests before closing their connections.
    pub graceful_shutdown_timeout: Duration,
}

/// Which `Host` headers name this server.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    any: bool,
    any_ip: bool,
    names: Vec<String>,
}

impl AllowedHosts {
    /// The names a client may use for a server bound to `bind`: for loopback, `localhost` and the
    /// loopback addresses; for an address, that address; for every interface (0.0.0.0 or ::),
    /// any IP address and `localhost`, since the names the machine has are not known here.
    pub fn for_bind(bind: IpAddr) -> Self {
        let mut names = vec!["localhost".to_string()];
        if bind.is_loopback() {
            names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
        } else if !bind.is_unspecified() {
            names.push(bind.to_string());
        }
        AllowedHosts { any: false, any_ip: bind.is_unspecified(), names }
    }

    /// `--allowed-hosts`: comma-separated names; `*` allows any.
    pub fn parse(list: &str) -> Self {
        let names: Vec<String> = list.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        AllowedHosts { any: names.iter().any(|n| n == "*"), any_ip: false, names }
    }

    /// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let host = host.trim().to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
            None if host.matches(':').count() == 1 => host.split(':').next().unwrap_or_default().to_string(),
            None => host,
        };
        let name = name.trim_end_matches('.');
        self.names.iter().any(|n| n == name) || (self.any_ip && name.parse::<IpAddr>().is_ok())
    }
}

/// Middleware: 403 for a request whose `Host` is not one of this server's names, 400 without one.
pub async fn check_host(hosts: Arc<AllowedHosts>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
    match host {
        Some(h) if hosts.allows(&h) => next.run(req).await,
        Some(h) => super::error(StatusCode::FORBIDDEN, format!("Host `{h}` does not name this server; start it with --allowed-hosts {h} to allow it")),
        None => super::error(StatusCode::BAD_REQUEST, "the request has no Host header"),
    }
}

/// The answer to a connection over the limit, written before it is closed. What the client sent
/// is read and dropped until it closes (for at most a second): closing a socket with unread input
/// makes the kernel send a reset, which can destroy the answer before the client reads it.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"too many open connections; retry shortly","status":503}"#;
    let head = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets open requests
/// finish for at most `limits.graceful_shutdown_timeout`.
pub async fn serve(listener: TcpListener, app: axum::Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.limit_concurrency.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| app.clone().oneshot(req.map(Body::new)));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.graceful_shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("open requests did not finish within {:?}; closing their connections", limits.graceful_shutdown_timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_bind_address() {
        let lo = AllowedHosts::for_bind("127.0.0.1".parse().unwrap());
        for ok in ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:80", "LOCALHOST.", "127.0.0.1"] {
            assert!(lo.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.1:8080", "localhost.evil.example", ""] {
            assert!(!lo.allows(bad), "{bad}");
        }
        let any_if = AllowedHosts::for_bind("0.0.0.0".parse().unwrap());
        assert!(any_if.allows("10.1.2.3:8080") && any_if.allows("[fe80::1]:8080") && !any_if.allows("rebind.example:8080"));
        let named = AllowedHosts::for_bind("10.1.2.3".parse().unwrap());
        assert!(named.allows("10.1.2.3:8080") && !named.allows("10.1.2.4:8080"));
        let given = AllowedHosts::parse("models.internal, Other.Example");
        assert!(given.allows("models.internal:443") && given.allows("other.example") && !given.allows("localhost"));
        assert!(AllowedHosts::parse("*").allows("anything:1"));
    }
}
