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
