//! HTTP downloads for the model cache, trusting the server as little as possible: connect and read
//! timeouts (huggingface_hub's `HF_HUB_ETAG_TIMEOUT` / `HF_HUB_DOWNLOAD_TIMEOUT`, 10 s each by
//! default), the proxy of `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` except for `NO_PROXY` hosts and
//! loopback, a byte cap enforced while reading (a body longer than announced is cut off, not
//! stored), writes to a temporary file that is fsynced and renamed only once its digest matches,
//! and URLs whose credentials never reach a message.
use crate::error::{Error, Result};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// The digest a download must have: hex of a sha256, or of a git blob's sha1 (the hub's etag for
/// files kept in git rather than LFS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digest256OrGit {
    Sha256(String),
    GitBlobSha1(String),
}

impl Digest256OrGit {
    /// Reads a hub etag: 64 hex digits are a sha256 (LFS), 40 a git blob sha1; anything else —
    /// a path, a quote, a weak validator — is refused, since the etag names a file in the cache.
    pub fn from_etag(etag: &str) -> std::result::Result<Self, String> {
        let e = etag.trim().trim_start_matches("W/").trim_matches('"');
        let hex = !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match e.len() {
            64 if hex => Ok(Self::Sha256(e.to_string())),
            40 if hex => Ok(Self::GitBlobSha1(e.to_string())),
            _ => Err(format!("the server's etag {etag:?} is not a sha256 or git sha1")),
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Self::Sha256(h) | Self::GitBlobSha1(h) => h,
        }
    }

    /// `Err("sha256 <got>, expected <want>")` when `path`'s content does not match.
    fn check(&self, path: &Path, len: u64) -> std::result::Result<(), String> {
        let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let (kind, got) = match self {
            Self::Sha256(_) => ("sha256", hash_reader(Sha256::new(), &mut f)?),
            Self::GitBlobSha1(_) => {
                let mut h = Sha1::new();
                h.update(format!("blob {len}\0").as_bytes());
                ("git sha1", hash_reader(h, &mut f)?)
            }
        };
        if got == self.hex() {
            Ok(())
        } else {
            Err(format!("{kind} {got}, expected {}", self.hex()))
        }
    }
}

fn hash_reader<D: Digest>(mut h: D, r: &mut impl Read) -> std::result::Result<String, String> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `url` with any `user:password@` replaced by `***@`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs_f64(std::env::var(var).ok().and_then(|s| s.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0).unwrap_or(default as f64))
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host.to_ascii_lowercase()
}

/// Whether requests to `host` go around the proxy: loopback, or a `NO_PROXY` entry (`*`, a host,
/// or a domain suffix with or without its leading dot).
fn bypasses_proxy(host: &str) -> bool {
    if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    let list = std::env::var("NO_PROXY").or_else(|_| std::env::var("no_proxy")).unwrap_or_default();
    list.split(',').map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase()).filter(|e| !e.is_empty()).any(|e| e == "*" || host == e || host.ends_with(&format!(".{e}")))
}

/// An agent for `url`: timeouts from the environment, the environment's proxy, and `redirects`
/// followed (0: a 3xx is returned to the caller).
pub fn agent(url: &str, redirects: u32) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(seconds("HF_HUB_ETAG_TIMEOUT", 10))
        .timeout_read(seconds("HF_HUB_DOWNLOAD_TIMEOUT", 10))
        .redirects(redirects)
        .try_proxy_from_env(!bypasses_proxy(&host_of(url)))
        .build()
}

/// A request error as a message, its URL redacted.
pub fn describe(url: &str, e: ureq::Error) -> Error {
    let what = match e {
        ureq::Error::Status(code, r) => format!("HTTP {code} {}", r.status_text()),
        ureq::Error::Transport(t) => {
            // The transport error's own text repeats the URL; keep only its kind and cause.
            let mut m = format!("{}", t.kind());
            if let Some(msg) = t.message() {
                m.push_str(": ");
                m.push_str(&redact(msg));
            }
            m
        }
    };
    Error::Download(format!("{}: {what}", redact(url)))
}

/// GETs `url` into `dest`, at most `cap` bytes, exactly `expected_len` when given, with the
/// `digest` when given: the body goes to a temporary file beside `dest`, fsynced, checked, then
/// renamed. `headers` are sent as given (an authorization token, say).
pub fn fetch_to(url: &str, headers: &[(&str, String)], dest: &Path, cap: u64, expected_len: Option<u64>, digest: Option<&Digest256OrGit>, progress: bool) -> Result<()> {
    let dir = dest.parent().ok_or_else(|| Error::file(dest, "no parent directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut req = agent(url, 5).get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = req.call().map_err(|e| describe(url, e))?;
    let announced: Option<u64> = resp.header("content-length").and_then(|v| v.trim().parse().ok());
    let limit = expected_len.unwrap_or(cap).min(cap);
    if let Some(n) = announced.filter(|&n| n > limit) {
        return Err(Error::Download(format!("{}: the server announces {n} bytes; at most {limit} are expected", redact(url))));
    }
    let mut tmp = tempfile::Builder::new().prefix(".download-").suffix(".incomplete").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    let bar = progress.then(|| byte_bar(announced.or(expected_len), dest));
    let mut reader = resp.into_reader().take(limit + 1);
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::Download(format!("{}: after {got} bytes: {e}", redact(url))))?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > limit {
            return Err(Error::Download(format!("{}: the body is longer than the {limit} bytes expected; refused", redact(url))));
        }
        tmp.write_all(&buf[..n]).map_err(|e| Error::io(tmp.path(), e))?;
        if let Some(b) = &bar {
            b.inc(n as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(want) = expected_len.filter(|&w| w != got) {
        return Err(Error::Download(format!("{}: {got} bytes received, {want} expected", redact(url))));
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    if let Some(d) = digest {
        d.check(tmp.path(), got).map_err(|e| Error::Download(format!("{}: {e}; nothing was stored", redact(url))))?;
    }
    tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    crate::io::fsync_dir(dir)
}

/// A bytes progress bar on stderr named after the file being written.
fn byte_bar(len: Option<u64>, dest: &Path) -> indicatif::ProgressBar {
    let bar = len.map_or_else(indicatif::ProgressBar::new_spinner, indicatif::ProgressBar::new);
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} [{eta}]").expect("a valid template");
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_name_digests_only() {
        let sha = "a".repeat(64);
        assert_eq!(Digest256OrGit::from_etag(&format!("\"{sha}\"")), Ok(Digest256OrGit::Sha256(sha.clone())));
        assert_eq!(Digest256OrGit::from_etag(&format!("W/\"{}\"", "0123456789abcdef0123456789abcdef01234567")).unwrap().hex(), "0123456789abcdef0123456789abcdef01234567");
        for bad in ["../../../../etc/passwd", "", "\"\"", &"A".repeat(64), &format!("{}/x", "a".repeat(62)), &"a".repeat(63)] {
            assert!(Digest256OrGit::from_etag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact("https://user:s3cret@pypi.example/simple/pkg/"), "https://***@pypi.example/simple/pkg/");
        assert_eq!(redact("https://pypi.org/simple/a@b"), "https://pypi.org/simple/a@b");
        assert_eq!(host_of("http://u:p@[::1]:8080/x"), "::1");
        assert_eq!(host_of("https://Files.PythonHosted.org/packages"), "files.pythonhosted.org");
    }

    #[test]
    fn git_blob_sha1_is_gits() {
        // `git hash-object` of "hello\n".
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "hello\n").unwrap();
        assert_eq!(Digest256OrGit::GitBlobSha1("ce013625030ba8dba906f756967f9e9ca394464a".into()).check(&p, 6), Ok(()));
        assert!(Digest256OrGit::Sha256("0".repeat(64)).check(&p, 6).unwrap_err().starts_with("sha256 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"));
    }
}
