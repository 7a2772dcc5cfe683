//! `finetune distill`: the distillation losses (sequence, token and span) and their gradients equal
//! PyTorch's on fixed logits (tools/make_kd_golden.py), the student takes exactly the mapped layers,
//! and distillation runs (GLUE, NER, SQuAD) train a smaller student end to end; teachers that do
//! not fit the task are clear errors.
mod common;
use finetune::data::classify::ProblemType;
use finetune::model::checkpoint::read_safetensors;
use finetune::model::student::{default_layer_map, make_student};
use finetune::train::distill::{teacher_config, DistillArgs, StudentInit, TeacherRows};
use finetune::train::kd::{hidden_mse, kd_loss, span_kd_loss, token_kd_loss};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

#[test]
fn kd_loss_and_gradient_equal_pytorch() {
    let g = common::fixture("kd_golden.json");
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for c in cases {
        let problem = if c["problem"] == "regression" { ProblemType::Regression } else { ProblemType::SingleLabel };
        let student = tn(&c["student"]).set_requires_grad(true);
        let labels = match problem {
            ProblemType::Regression => tn(&c["labels"]),
            _ => tn(&c["labels"]).to_kind(tch::Kind::Int64),
        };
        let (alpha, t) = (c["alpha"].as_f64().unwrap(), c["temperature"].as_f64().unwrap());
        let loss = kd_loss(&student, &tn(&c["teacher"]), &labels, problem, alpha, t);
        close(&loss, &c["loss"], &format!("{problem:?} loss alpha {alpha} T {t}"));
        loss.backward();
        close(&student.grad(), &c["grad"], &format!("{problem:?} gradient alpha {alpha} T {t}"));
    }
}

/// A nested JSON array of numbers as a tensor of its shape.
fn tn(v: &serde_json::Value) -> Tensor {
    fn walk(v: &serde_json::Value, shape: &mut Vec<i64>, depth: usize, out: &mut Vec<f64>) {
        match v.as_array() {
            Some(a) => {
                if shape.len() == depth {
                    shape.push(a.len() as i64);
                }
                a.iter().for_each(|x| walk(x, shape, depth + 1, out));
            }
            None => out.push(v.as_f64().unwrap()),
        }
    }
    let (mut shape, mut data) = (Vec::new(), Vec::new());
    walk(v, &mut shape, 0, &mut data);
    Tensor::from_slice(&data).view(shape.as_slice())
}

/// Equal to 1e-6, relative where the values exceed 1.
fn close(got: &Tensor, want: &serde_json::Value, what: &str) {
    let want = tn(want);
    let d = (got - &want).abs().max().double_value(&[]);
    let scale = want.abs().max().double_value(&[]).max(1.0);
    assert!(d <= 1e-6 * scale, "{what}: differs from PyTorch by {d}");
}

#[test]
fn token_and_span_kd_losses_and_gradients_equal_pytorch() {
    let g = common::fixture("kd_golden.json");
    let token = g["token_cases"].as_array().unwrap();
    assert_eq!(token.len(), 4);
    for c in token {
        let (alpha, t) = (c["alpha"].as_f64().unwrap(), c["temperature"].as_f64().unwrap());
        let student = tn(&c["student"]).set_requires_grad(true);
        let loss = token_kd_loss(&student, &tn(&c["teacher"]), &tn(&c["labels"]).to_kind(tch::Kind::Int64), alpha, t);
        close(&loss, &c["loss"], &format!("token loss alpha {alpha} T {t}"));
        loss.backward();
        close(&student.grad(), &c["grad"], &format!("token gradient alpha {alpha} T {t}"));
    }
    let span = g["span_cases"].as_array().unwrap();
    assert_eq!(span.len(), 4);
    for c in span {
        let (alpha, t) = (c["alpha"].as_f64().unwrap(), c["temperature"].as_f64().unwrap());
        let (start, end) = (tn(&c["start"]).set_requires_grad(true), tn(&c["end"]).set_requires_grad(true));
        let long = |k: &str| tn(&c[k]).to_kind(tch::Kind::Int64);
        let loss = span_kd_loss(&start, &end, &tn(&c["teacher_start"]), &tn(&c["teacher_end"]), &long("mask"), &long("start_positions"), &long("end_positions"), alpha, t);
        close(&loss, &c["loss"], &format!("span loss alpha {alpha} T {t}"));
        loss.backward();
        close(&start.grad(), &c["grad_start"], &format!("span start gradient alpha {alpha} T {t}"));
        close(&end.grad(), &c["grad_end"], &format!("span end gradient alpha {alpha} T {t}"));
    }
}

#[test]
fn hidden_state_mse_and_gradient_equal_pytorch() {
    let g = common::fixture("kd_golden.json");
    let cases = g["hidden_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let student: Vec<Tensor> = c["student"].as_array().unwrap().iter().map(|s| tn(s).set_requires_grad(true)).collect();
        let teacher: Vec<Tensor> = c["teacher"].as_array().unwrap().iter().map(tn).collect();
        let what = format!("{} student states, {} teacher states", student.len(), teacher.len());
        let loss = hidden_mse(&student, &teacher, &tn(&c["mask"]).to_kind(tch::Kind::Int64));
        close(&loss, &c["loss"], &what);
        loss.backward();
        for (s, want) in student.iter().zip(c["grad"].as_array().unwrap()) {
            close(&s.grad(), want, &format!("{what}: gradient"));
        }
    }
}

#[test]
fn a_hidden_state_term_needs_equal_hidden_sizes() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/electra");
    let student = finetune::model::config::BertConfig::from_file(&fixture.join("config.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture.join("config.json")).unwrap()).unwrap();
    cfg["hidden_size"] = 32.into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let mut args = DistillArgs { teacher: tmp.path().into(), alpha: 0.5, temperature: 2.0, student_layers: None, layer_map: None, student_init: StudentInit::Base, hidden_loss_weight: 0.0 };
    assert!(teacher_config(&args, &student, None, "squad").is_ok());
    args.hidden_loss_weight = 1.0;
    let err = teacher_config(&args, &student, None, "squad").unwrap_err().to_string();
    assert!(err.contains("hidden_size is 32 and the student's 16"), "{err}");
    args.hidden_loss_weight = -1.0;
    assert!(finetune::train::distill::validate(&args).unwrap_err().to_string().contains("--hidden-loss-weight"));
}

#[test]
fn teacher_rows_pad_each_example_to_the_batch_width() {
    let parts = [Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]), Tensor::from_slice(&[5.0f32, 6.0]).view([1, 2]), Tensor::from_slice(&[7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]).view([3, 2])];
    let rows = TeacherRows::new(&parts);
    let b = rows.batch(&[2, 0, 1], 4, tch::Device::Cpu);
    assert_eq!(b.size(), vec![3, 4, 2]);
    let got: Vec<f32> = Vec::try_from(b.view([-1])).unwrap();
    assert_eq!(got, vec![7., 8., 9., 10., 11., 12., 0., 0., 1., 2., 3., 4., 0., 0., 0., 0., 5., 6., 0., 0., 0., 0., 0., 0.]);
}

#[test]
fn the_student_takes_exactly_the_mapped_layers() {
    assert_eq!(default_layer_map(6, 3), vec![0, 2, 4]);
    assert_eq!(default_layer_map(12, 6), vec![0, 2, 4, 6, 8, 10]);
    assert_eq!(default_layer_map(6, 6), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(default_layer_map(12, 4), vec![0, 3, 6, 9]);
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let teacher = tmp.path().join("teacher");
    common::fine_tuned_classifier(&model, &teacher, &["entailment", "not_entailment"], "rte");
    let src: HashMap<String, Tensor> = read_safetensors(&teacher.join("model.safetensors")).unwrap().into_iter().collect();
    for keep_head in [false, true] {
        let out = make_student(&teacher, &[1, 3, 5], keep_head, &tmp.path().join(format!("student-{keep_head}"))).unwrap();
        let got: HashMap<String, Tensor> = read_safetensors(&out.join("model.safetensors")).unwrap().into_iter().collect();
        let mut layer_tensors = 0;
        for (name, t) in &got {
            let from = match name.strip_prefix("bert.encoder.layer.") {
                Some(rest) => {
                    let (i, tail) = rest.split_once('.').unwrap();
                    layer_tensors += 1;
                    format!("bert.encoder.layer.{}.{tail}", [1, 3, 5][i.parse::<usize>().unwrap()])
                }
                None => name.clone(),
            };
            assert!(t.equal(&src[&from]), "{name} is not the teacher's {from}");
        }
        // 16 tensors a layer (4 Linear + 2 LayerNorm, weight and bias each, and the FFN's two
        // Linear): every one of the three layers, and nothing of the others.
        assert_eq!(layer_tensors, 3 * 16);
        let outside = src.keys().filter(|n| !n.starts_with("bert.encoder.layer.")).filter(|n| keep_head || !n.starts_with("classifier.")).count();
        assert_eq!(got.len(), layer_tensors + outside);
        assert_eq!(got.contains_key("classifier.weight"), keep_head);
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["num_hidden_layers"], 3);
        assert!(out.join("tokenizer.json").is_file());
    }
    for bad in [vec![0, 0], vec![6], vec![]] {
        let err = make_student(&teacher, &bad, false, &tmp.path().join("bad")).unwrap_err().to_string();
        assert!(err.contains("layer map"), "{err}");
    }
}

/// An RTE folder with the first rows of the real files.
fn small_rte(glue: &Path, dir: &Path, train: usize, dev: usize) {
    let src = glue.join("RTE");
    let dst = dir.join("RTE");
    std::fs::create_dir_all(&dst).unwrap();
    let head = |f: &str, n: usize| std::fs::read_to_string(src.join(f)).unwrap().lines().take(n + 1).map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(dst.join("train.tsv"), head("train.tsv", train)).unwrap();
    std::fs::write(dst.join("dev.tsv"), head("dev.tsv", dev)).unwrap();
}

#[test]
fn a_distilled_student_trains_and_unfit_teachers_are_refused() {
    let (Some(model), Some(glue)) = (common::model_dir(), common::glue_dir()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    small_rte(&glue, tmp.path(), 32, 16);
    let teacher = tmp.path().join("teacher");
    common::fine_tuned_classifier(&model, &teacher, &["entailment", "not_entailment"], "rte");
    let run = |teacher: &Path, out: &str| {
        let out = tmp.path().join(out);
        let o = common::server::finetune()
            .args(["distill", "--task", "rte", "--student-layers", "2", "--max-steps", "2", "--batch-size", "8", "--max-seq-length", "64", "--save-strategy", "no", "--temperature", "5", "--alpha", "0.7"])
            .arg("--model")
            .arg(&model)
            .arg("--teacher")
            .arg(teacher)
            .arg("--data-dir")
            .arg(tmp.path())
            .arg("--output-dir")
            .arg(&out)
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned(), out)
    };
    let (ok, stderr, out) = run(&teacher, "student");
    assert!(ok, "{stderr}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!((cfg["num_hidden_layers"].as_i64(), cfg["id2label"]["1"].as_str()), (Some(2), Some("not_entailment")));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval_results.json")).unwrap()).unwrap();
    assert_eq!(results["eval_samples"], 16);
    let rc: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run_config.json")).unwrap()).unwrap();
    assert_eq!(rc["args"]["distill"]["alpha"], 0.7);
    assert_eq!(rc["args"]["distill"]["student_layers"], 2);
    // The saved student loads as a 2-layer classifier.
    let c = finetune::infer::Classifier::load(&out, None, tch::Device::Cpu).unwrap();
    assert_eq!(c.labels.as_deref(), Some(&["entailment".to_string(), "not_entailment".to_string()][..]));

    // A teacher with other labels, for another task, with another vocabulary.
    let other_labels = tmp.path().join("t-labels");
    common::fine_tuned_classifier(&model, &other_labels, &["neg", "pos"], "rte");
    let (ok, stderr, _) = run(&other_labels, "s1");
    assert!(!ok && stderr.contains("teacher's labels"), "{stderr}");
    let other_task = tmp.path().join("t-task");
    common::fine_tuned_classifier(&model, &other_task, &["entailment", "not_entailment"], "mnli");
    let (ok, stderr, _) = run(&other_task, "s2");
    assert!(!ok && stderr.contains("fine-tuned on `mnli`"), "{stderr}");
    let roberta = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/roberta");
    let other_vocab = tmp.path().join("t-vocab");
    common::fine_tuned_classifier(&roberta, &other_vocab, &["entailment", "not_entailment"], "rte");
    let (ok, stderr, _) = run(&other_vocab, "s3");
    assert!(!ok && stderr.contains("one vocabulary"), "{stderr}");
    // α outside [0, 1].
    let args = DistillArgs { teacher: teacher.clone(), alpha: 1.5, temperature: 2.0, student_layers: None, layer_map: None, student_init: StudentInit::Base, hidden_loss_weight: 0.0 };
    assert!(finetune::train::distill::validate(&args).unwrap_err().to_string().contains("--alpha"));
}

const NER_TRAIN: &str = "EU I-ORG\nrejects O\nGerman I-MISC\ncall O\n\nPeter I-PER\nBlackburn I-PER\n\nBRUSSELS I-LOC\n1996-08-22 O\n\nThe O\nEuropean I-ORG\nCommission I-ORG\nsaid O\n\n";
const NER_DEV: &str = "Peter I-PER\nvisited O\nBRUSSELS I-LOC\n\nThe O\nEuropean I-ORG\nCommission I-ORG\nand O\nGerman I-MISC\nfarmers O\n\n";

/// A tiny SQuAD file: two questions on one paragraph.
fn squad_json() -> String {
    let context = "The European Commission said on Thursday it disagreed with German advice to consumers to shun British lamb.";
    serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Who disagreed with the advice?", "answers": [{"text": "The European Commission", "answer_start": 0}]},
        {"id": "q2", "question": "What should consumers shun?", "answers": [{"text": "British lamb", "answer_start": context.find("British").unwrap()}]},
    ]}]}]})
    .to_string()
}

fn run_finetune(args: &[&str]) -> (bool, String) {
    let o = common::server::finetune().args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn ner_and_squad_students_distil_and_unfit_teachers_are_refused() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/electra");
    let model = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    std::fs::write(p("train.txt"), NER_TRAIN).unwrap();
    std::fs::write(p("dev.txt"), NER_DEV).unwrap();
    std::fs::write(p("squad.json"), squad_json()).unwrap();
    let (train, dev, squad) = (p("train.txt"), p("dev.txt"), p("squad.json"));
    let ner = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["--train-file", &train, "--validation-file", &dev, "--output-dir", out, "--batch-size", "2", "--max-steps", "4", "--learning-rate", "1e-3", "--save-strategy", "no"].iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let qa = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["--train-file", &squad, "--dev-file", &squad, "--output-dir", out, "--batch-size", "2", "--max-steps", "3", "--max-seq-length", "24", "--doc-stride", "6", "--max-query-length", "8", "--save-strategy", "no"].iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let go = |cmd: &[&str], a: Vec<String>| run_finetune(&cmd.iter().copied().chain(a.iter().map(String::as_str)).collect::<Vec<_>>());

    let (ok, err) = go(&["ner", "--model", model], ner(&p("ner-teacher"), &[]));
    assert!(ok, "{err}");
    let kd = ["--teacher", &p("ner-teacher"), "--student-layers", "1", "--model", model];
    let (ok, err) = go(&["distill", "ner"], ner(&p("ner-student"), &[&kd[..], &["--alpha", "0.7", "--temperature", "2"]].concat()));
    assert!(ok, "{err}");
    let student = tmp.path().join("ner-student");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(student.join("config.json")).unwrap()).unwrap();
    assert_eq!((cfg["num_hidden_layers"].as_i64(), cfg["architectures"][0].as_str()), (Some(1), Some("ElectraForTokenClassification")));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(student.join("eval_results.json")).unwrap()).unwrap();
    assert!(results["eval_f1"].is_number(), "{results}");
    let rc: serde_json::Value = serde_json::from_slice(&std::fs::read(student.join("run_config.json")).unwrap()).unwrap();
    assert_eq!(rc["args"]["distill"]["alpha"], 0.7);
    // α = 0 is plain fine-tuning of the same student: the same losses, step for step, as `ner`
    // on the student's initial weights; α > 0 changes them.
    let (ok, err) = go(&["distill", "ner"], ner(&p("ner-alpha0"), &[&kd[..], &["--alpha", "0"]].concat()));
    assert!(ok, "{err}");
    let init = p("ner-alpha0/student_init");
    let (ok, err) = go(&["ner", "--model", &init], ner(&p("ner-plain"), &[]));
    assert!(ok, "{err}");
    let losses = |run: &str| -> Vec<f64> {
        std::fs::read_to_string(tmp.path().join(run).join("train_log.jsonl")).unwrap().lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64()).collect()
    };
    assert!(!losses("ner-plain").is_empty());
    assert_eq!(losses("ner-alpha0"), losses("ner-plain"));
    assert_ne!(losses("ner-student"), losses("ner-plain"));
    // TinyBERT's hidden-state term adds to the loss: with α = 0 the losses now differ from plain
    // fine-tuning's.
    let (ok, err) = go(&["distill", "ner"], ner(&p("ner-hidden"), &[&kd[..], &["--alpha", "0", "--hidden-loss-weight", "1"]].concat()));
    assert!(ok, "{err}");
    let (hidden, plain) = (losses("ner-hidden"), losses("ner-plain"));
    assert!(hidden.iter().zip(&plain).all(|(h, p)| h > p), "{hidden:?} vs {plain:?}");

    // Resume: a copy of a checkpointed run cut back to its step-2 checkpoint ends on the same bytes.
    let ckpt = [&kd[..], &["--save-strategy", "steps", "--save-steps", "2"]].concat();
    let strip = |a: Vec<String>| -> Vec<String> {
        let i = a.iter().position(|x| x == "--save-strategy").unwrap();
        a.into_iter().enumerate().filter(|(j, _)| *j != i && *j != i + 1).map(|(_, x)| x).collect()
    };
    let (ok, err) = go(&["distill", "ner"], strip(ner(&p("ner-full"), &ckpt)));
    assert!(ok, "{err}");
    let (full, cut) = (tmp.path().join("ner-full"), tmp.path().join("ner-cut"));
    std::fs::create_dir_all(&cut).unwrap();
    for e in std::fs::read_dir(&full).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "checkpoint-2" {
            std::fs::create_dir_all(cut.join(&name)).unwrap();
            for f in std::fs::read_dir(e.path()).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), cut.join(&name).join(f.file_name())).unwrap();
            }
        } else if ["run_config.json", "train_log.jsonl"].contains(&name.as_str()) {
            std::fs::copy(e.path(), cut.join(&name)).unwrap();
        }
    }
    let (ok, err) = go(&["distill", "ner"], strip(ner(&p("ner-cut"), &[&ckpt[..], &["--resume"]].concat())));
    assert!(ok && err.contains("resuming from"), "{err}");
    assert!(std::fs::read(full.join("model.safetensors")).unwrap() == std::fs::read(cut.join("model.safetensors")).unwrap(), "a resumed distillation ends elsewhere");

    let (ok, err) = go(&["squad", "--model", model], qa(&p("qa-teacher"), &[]));
    assert!(ok, "{err}");
    let (ok, err) = go(&["distill", "squad"], qa(&p("qa-student"), &["--teacher", &p("qa-teacher"), "--student-layers", "1", "--model", model, "--hidden-loss-weight", "0.5"]));
    assert!(ok, "{err}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("qa-student/config.json")).unwrap()).unwrap();
    assert_eq!((cfg["num_hidden_layers"].as_i64(), cfg["architectures"][0].as_str()), (Some(1), Some("ElectraForQuestionAnswering")));

    // A teacher for another task.
    let (ok, err) = go(&["distill", "squad"], qa(&p("qa-bad"), &["--teacher", &p("ner-teacher"), "--model", model]));
    assert!(!ok && err.contains("fine-tuned on `ner`"), "{err}");
    let (ok, err) = go(&["distill", "ner"], ner(&p("ner-bad"), &["--teacher", &p("qa-teacher"), "--model", model]));
    assert!(!ok && err.contains("teacher's labels"), "{err}");
    // Other tags.
    let (ok, err) = go(&["distill", "ner"], ner(&p("ner-bad2"), &["--teacher", &p("ner-teacher"), "--model", model, "--label-list", "O,B-PER,I-PER,B-LOC,I-LOC,B-ORG,I-ORG,B-MISC,I-MISC"]));
    assert!(!ok && err.contains("teacher's labels"), "{err}");
    // Refused runs leave no run config, so their corrected reruns are not "already holding a run"
    // (issue 39).
    for dir in ["qa-bad", "ner-bad", "ner-bad2"] {
        assert!(!std::path::Path::new(&p(dir)).join("run_config.json").exists(), "{dir}: a refused run wrote its run config");
    }
}
