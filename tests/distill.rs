//! `finetune distill`: the distillation loss and its gradient equal PyTorch's on fixed logits
//! (tools/make_kd_golden.py), the student takes exactly the mapped layers, and a distillation run
//! trains a smaller student end to end; teachers that do not fit the task are clear errors.
mod common;
use finetune::data::classify::ProblemType;
use finetune::model::checkpoint::read_safetensors;
use finetune::model::student::{default_layer_map, make_student};
use finetune::train::distill::{kd_loss, DistillArgs, StudentInit};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

fn t2(v: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let n = rows.len() as i64;
    Tensor::from_slice(&rows.concat()).view([n, -1])
}

#[test]
fn kd_loss_and_gradient_equal_pytorch() {
    let g = common::fixture("kd_golden.json");
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for c in cases {
        let problem = if c["problem"] == "regression" { ProblemType::Regression } else { ProblemType::SingleLabel };
        let student = t2(&c["student"]).set_requires_grad(true);
        let teacher = t2(&c["teacher"]);
        let labels = match problem {
            ProblemType::Regression => Tensor::from_slice(&serde_json::from_value::<Vec<f64>>(c["labels"].clone()).unwrap()),
            _ => Tensor::from_slice(&serde_json::from_value::<Vec<i64>>(c["labels"].clone()).unwrap()),
        };
        let (alpha, t) = (c["alpha"].as_f64().unwrap(), c["temperature"].as_f64().unwrap());
        let loss = kd_loss(&student, &teacher, &labels, problem, alpha, t);
        let want = c["loss"].as_f64().unwrap();
        let got = loss.double_value(&[]);
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{problem:?} alpha {alpha} T {t}: loss {got} vs PyTorch {want}");
        loss.backward();
        let d = (student.grad() - t2(&c["grad"])).abs().max().double_value(&[]);
        assert!(d <= 1e-6, "{problem:?} alpha {alpha} T {t}: gradient differs by {d}");
    }
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
    let args = DistillArgs { teacher: teacher.clone(), alpha: 1.5, temperature: 2.0, student_layers: None, layer_map: None, student_init: StudentInit::Base };
    assert!(finetune::train::distill::validate(&args).unwrap_err().to_string().contains("--alpha"));
}
