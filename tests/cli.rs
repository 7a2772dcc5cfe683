//! The binary's error path: bad arguments and inputs exit non-zero with a message naming the
//! problem, never a panic.
use std::process::Command;

fn finetune(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_finetune")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.success(), stderr)
}

#[test]
fn unknown_task_is_reported() {
    let (ok, err) = finetune(&["glue", "--task", "squad", "--data-dir", "/tmp", "--output-dir", "/tmp/x"]);
    assert!(!ok);
    assert!(err.contains("unknown task `squad`"), "{err}");
}

#[test]
fn missing_model_and_bad_device_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (ok, err) = finetune(&["glue", "--task", "rte", "--model", "nobody/nothing", "--data-dir", "/tmp", "--output-dir", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("nobody/nothing") && err.contains("finetune fetch"), "{err}");
    let (ok, err) = finetune(&["glue", "--task", "rte", "--device", "tpu", "--data-dir", "/tmp", "--output-dir", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("device `tpu`"), "{err}");
}

#[test]
fn missing_data_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), br#"{"vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8}"#).unwrap();
    std::fs::write(model.join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n").unwrap();
    let data = tmp.path().join("glue");
    std::fs::create_dir_all(data.join("RTE")).unwrap();
    let (ok, err) = finetune(&["glue", "--task", "rte", "--model", model.to_str().unwrap(), "--data-dir", data.to_str().unwrap(), "--output-dir", tmp.path().join("o").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("RTE/train.tsv"), "{err}");
}

#[test]
fn device_flags_set_precision_optimizer_and_padding_defaults() {
    use clap::Parser;
    use finetune::train::optim::OptimizerKind;
    use finetune::train::args::TrainArgs;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        d: finetune::cli::flags::DeviceCli,
    }
    let apply = |args: &[&str]| {
        let mut t = TrainArgs::default();
        let r = T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap().d.apply(&mut t);
        r.map(|_| t)
    };
    let t = apply(&[]).unwrap();
    assert_eq!((t.optim_kind, t.bf16, t.pad_to_multiple_of), (OptimizerKind::AdamwTorchFused, false, 1));
    let t = apply(&["--bf16"]).unwrap();
    assert_eq!((t.bf16, t.pad_to_multiple_of, t.autocast_dtype()), (true, 8, Some(tch::Kind::BFloat16)));
    let t = apply(&["--fp16", "--pad-to-multiple-of", "32", "--optim", "adamw_torch_fused"]).unwrap();
    assert_eq!((t.fp16, t.pad_to_multiple_of, t.optim_kind), (true, 32, OptimizerKind::AdamwTorchFused));
    assert!(apply(&["--tf32", "true"]).unwrap_err().to_string().contains("needs a CUDA device"));
    assert!(apply(&["--optim", "lamb"]).unwrap_err().to_string().contains("adamw_torch, adamw_torch_fused or sgd"));
    assert!(apply(&["--cuda-graphs"]).unwrap_err().to_string().contains("--cuda-graphs needs a CUDA device"));
    let t = apply(&["--dropout-rng", "cpu"]).unwrap();
    assert_eq!(t.dropout_rng, finetune::model::dropout::DropoutRng::Cpu);
    let (ok, err) = finetune(&["glue", "--task", "rte", "--bf16", "--fp16", "--data-dir", "/nonexistent", "--output-dir", "/tmp/x"]);
    assert!(!ok && err.contains("--bf16") && err.contains("cannot be used with") && err.contains("--fp16"), "{err}");
}

#[test]
fn channels_last_takes_an_optional_value_and_defaults_by_device() {
    use clap::Parser;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        e: finetune::cli::image::ImageEvalCli,
    }
    let parse = |args: &[&str]| {
        let base = ["t", "--model", "m", "--list", "l.txt", "--data-dir", "d"];
        T::try_parse_from(base.iter().chain(args).copied()).unwrap().e.layout.channels_last
    };
    assert_eq!(parse(&[]), None);
    assert_eq!(parse(&["--channels-last"]), Some(true));
    assert_eq!(parse(&["--channels-last", "false"]), Some(false));
    assert_eq!(parse(&["--channels-last", "true", "--seed", "1"]), Some(true));
    // Unset, it follows the device: measured faster on the CPU, not yet measured on CUDA.
    assert!(finetune::model::vision::channels_last_default(tch::Device::Cpu));
    assert!(!finetune::model::vision::channels_last_default(tch::Device::Cuda(0)));
}

/// A log written to a file (stderr not a terminal) is plain text: no ANSI colour codes.
#[test]
fn logs_redirected_to_a_file_have_no_escape_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.csv");
    std::fs::write(&data, "text,label\nsame text,a\nother text,b\n").unwrap();
    let d = data.to_str().unwrap();
    let o = tmp.path().join("o");
    // The leakage warning is logged before the (absent) model is looked up.
    let args = ["classify", "--model", "nobody/nothing", "--train-file", d, "--validation-file", d, "--output-dir", o.to_str().unwrap()];
    let out = Command::new(env!("CARGO_BIN_EXE_finetune")).args(args).env("HF_HUB_OFFLINE", "1").env_remove("NO_COLOR").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN") && stderr.contains("2 of 2 validation examples also occur in the training data"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in a redirected log: {stderr:?}");
}

/// On a terminal (a pseudo-terminal from util-linux `script`) the colours remain, unless NO_COLOR.
#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIP: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.csv");
    std::fs::write(&data, "text,label\nsame text,a\nother text,b\n").unwrap();
    let cmd = format!(
        "{} classify --model nobody/nothing --train-file {d} --validation-file {d} --output-dir {}",
        env!("CARGO_BIN_EXE_finetune"),
        tmp.path().join("o").display(),
        d = data.display()
    );
    let on_tty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).env("HF_HUB_OFFLINE", "1").env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("WARN") && coloured.contains("\u{1b}["), "{coloured:?}");
    let plain = on_tty(true);
    assert!(plain.contains("WARN") && !plain.contains("\u{1b}["), "{plain:?}");
}

/// Issue 39's arguments that were accepted silently, or answered with the wrong problem: each is
/// refused up front, naming what is wrong, before anything is written; a user's error is one
/// message with no Rust backtrace under it, whatever RUST_BACKTRACE says.
#[test]
fn bad_values_are_refused_by_name_and_user_errors_carry_no_backtrace() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let train = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/own-data/train.csv");
    let model_dir = tmp.path().join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(model_dir.join("config.json"), br#"{"vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8}"#).unwrap();
    let model = model_dir.to_str().unwrap();
    let glue = ["glue", "--task", "rte", "--data-dir", "/nonexistent", "--output-dir", out];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        ([&glue[..], &["--seeds", "42,43,42"]].concat(), "--seeds lists 42 twice"),
        ([&glue[..], &["--learning-rate", "-1e-3"]].concat(), "learning_rate must be a positive number"),
        (vec!["classify", "--train-file", train, "--output-dir", out, "--threshold", "1.5"], "1.5 lies outside (0, 1)"),
        (vec!["classify", "--train-file", train, "--output-dir", out, "--threshold", "-0.5"], "-0.5 lies outside (0, 1)"),
        (vec!["serve", "--model", "/nonexistent", "--max-batch-size", "0"], "must be at least 1"),
        (vec!["bench-serve", "--model", "/nonexistent", "--input", train, "--requests", "0"], "must be at least 1"),
        ([&glue[..], &["--model", model, "--max-seq-length", "1"]].concat(), "max_seq_length must be at least 3"),
        ([&glue[..], &["--model", model, "--max-seq-length", "0"]].concat(), "max_seq_length must be at least 3"),
        (vec!["ner", "--train-file", train, "--validation-file", train, "--output-dir", out, "--max-seq-length", "2"], "max_seq_length must be at least 3"),
        // squad predict: a mistyped file name, a folder, an empty question.
        (vec!["squad", "predict", "--model", model, "--context", "doc.txtt", "--question", "Who?"], "doc.txtt: --context: no such file"),
        (vec!["squad", "predict", "--model", model, "--context", "/tmp", "--question", "Who?"], "--context is a directory"),
        (vec!["squad", "predict", "--model", model, "--context", "Paris is in France.", "--question", " "], "--question is empty"),
    ];
    for (args, want) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_finetune")).args(&args).env("HF_HUB_OFFLINE", "1").env("RUST_BACKTRACE", "1").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("backtrace") && !err.contains("Caused by"), "{args:?}: {err}");
        assert!(!std::path::Path::new(out).exists(), "{args:?} wrote {out}");
    }
}

/// Issue 39's messages that named the wrong problem, now naming the real one.
#[test]
fn messages_name_the_real_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str, config: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), config).unwrap();
        d.to_str().unwrap().to_string()
    };
    let bert = r#""vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8"#;
    let classifier = dir("cls", &format!(r#"{{{bert}, "architectures": ["BertForSequenceClassification"], "id2label": {{"0": "a", "1": "b"}}}}"#));
    let qa = dir("qa", &format!(r#"{{{bert}, "architectures": ["BertForQuestionAnswering"]}}"#));
    let file = tmp.path().join("dev.txt");
    std::fs::write(&file, "EU B-ORG\nrejects O\n").unwrap();
    let (ok, err) = finetune(&["ner", "eval", "--model", &classifier, "--file", file.to_str().unwrap(), "--output-dir", tmp.path().join("e").to_str().unwrap()]);
    assert!(!ok && err.contains("a sequence classifier") && err.contains("not a token classifier") && !err.contains("B-ORG"), "{err}");
    let (ok, err) = finetune(&["serve", "--model", &qa, "--port", "0"]);
    assert!(!ok && err.contains("a question-answering model") && !err.contains("finetune glue"), "{err}");
    // compare on two NER runs names the NER command.
    for run in ["n1", "n2"] {
        let d = tmp.path().join(run);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("run_config.json"), r#"{"command": "ner", "args": {"train_file": "conll/train.txt"}}"#).unwrap();
        std::fs::write(d.join("eval_results.json"), r#"{"eval_f1": 0.5}"#).unwrap();
    }
    let (a, b) = (tmp.path().join("n1"), tmp.path().join("n2"));
    let (ok, err) = finetune(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(!ok && err.contains("`finetune ner` run"), "{err}");
    // One message per error: a missing file's cause once, no "Caused by" block.
    let absent = tmp.path().join("absent.csv");
    let (ok, err) = finetune(&["classify", "--train-file", absent.to_str().unwrap(), "--output-dir", tmp.path().join("x").to_str().unwrap()]);
    assert!(!ok && err.matches("No such file").count() == 1 && !err.contains("Caused by"), "{err}");
}
