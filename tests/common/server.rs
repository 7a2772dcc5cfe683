//! A `finetune serve` process for the server tests: started on a free loopback port, killed when
//! dropped; plain HTTP calls against it; a tiny model that serves fast.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn finetune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_finetune"));
    c.env("HF_HUB_OFFLINE", "1");
    c
}

pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(model: &Path, extra: &[&str]) -> Server {
    let mut child = finetune()
        .args(["serve", "--port", "0", "--max-body-bytes", "4096", "--max-batch-size", "4"])
        .arg("--model")
        .arg(model)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break url.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base }
}

/// (status, JSON body) of a request.
pub fn call(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let req = ureq::request(method, url).set("content-type", "application/json");
    let resp = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

/// A one-layer, 8-wide classifier with `base`'s tokenizer and `vocab_size` embeddings. With 2,000
/// under the 30,522-word tokenizer it does not match its weights: inputs with common words run, a
/// rare word indexes past the embedding and fails inside libtorch.
pub fn tiny_model(base: &Path, dir: &Path, vocab_size: usize) {
    use finetune::data::classify::ProblemType;
    use finetune::model::{checkpoint, config::BertConfig, heads::SequenceClassifier};
    let cfg: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": vocab_size, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8, "model_type": "bert",
    }))
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _net = SequenceClassifier::new(&vs.root(), &cfg, 2);
    checkpoint::save_safetensors(&vs, &dir.join("model.safetensors")).unwrap();
    checkpoint::save_config(&cfg, Some(&["neg".into(), "pos".into()]), ProblemType::SingleLabel, "toy", &dir.join("config.json")).unwrap();
    checkpoint::copy_files(base, dir, checkpoint::TOKENIZER_FILES).unwrap();
}

