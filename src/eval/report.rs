//! `finetune report`: collect finished runs (any directory holding `eval_results.json` and
//! `run_config.json`), aggregate them per task over seeds, and render the leaderboard table the
//! paper's Tables 3 and 5 show — ours as mean ± std (n), published references with their sources,
//! the majority-class baseline, the difference, training cost — then the GLUE score as both the
//! arithmetic and the geometric mean of per-task scores. Runs of `finetune classify` on a user's
//! own data get rows of their own (named after the training file; accuracy and macro F1, macro and
//! micro F1 for multi-label, Pearson and Spearman for regression; scored by their main metric) and
//! stay out of the GLUE score.
//!
//! Per-task score (what the GLUE leaderboard averages): the task's metric, or the mean of its two
//! metrics (MRPC F1/accuracy, STS-B Pearson/Spearman, QQP accuracy/F1, MNLI matched/mismatched),
//! averaged before the mean over tasks. Scores are percentages. The geometric mean is undefined
//! when a task score is negative (CoLA's MCC can be); the report then says which task.
use crate::data::classify::ProblemType;
use crate::data::glue::Task;
use crate::error::{Error, Result};
use crate::eval::references::{self, Source};
use crate::eval::stats::{self, Summary};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a run was trained on: a GLUE task, a user's own data set (`finetune classify`), or a
/// token-classification data set (`finetune ner`, named after its training file).
#[derive(Debug, Clone, PartialEq)]
pub enum RunTask {
    Glue(Task),
    Own { name: String, problem: ProblemType },
    Ner { name: String },
}

impl RunTask {
    pub fn name(&self) -> String {
        match self {
            RunTask::Glue(t) => t.name().into(),
            RunTask::Own { name, .. } | RunTask::Ner { name } => name.clone(),
        }
    }

    /// Rows come in GLUE order, then own data sets by name.
    fn order(&self) -> (usize, String) {
        match self {
            RunTask::Glue(t) => (Task::ALL.iter().position(|x| x == t).unwrap_or(0), String::new()),
            RunTask::Own { name, .. } | RunTask::Ner { name } => (Task::ALL.len(), name.clone()),
        }
    }
}

/// How a `finetune distill` run trained its student.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distilled {
    pub teacher: PathBuf,
    /// The student's transformer layers.
    pub layers: Option<i64>,
    pub alpha: f64,
    pub temperature: f64,
    pub hidden_loss_weight: f64,
}

impl Distilled {
    /// α = 0 and no hidden-state term: the student fine-tuned on the labels alone.
    pub fn is_direct(&self) -> bool {
        self.alpha == 0.0 && self.hidden_loss_weight == 0.0
    }

    pub fn label(&self) -> String {
        let layers = self.layers.map_or("student".into(), |k| format!("{k}-layer student"));
        if self.is_direct() {
            return format!("{layers}, fine-tuned directly");
        }
        let hidden = if self.hidden_loss_weight > 0.0 { format!(", β {}", self.hidden_loss_weight) } else { String::new() };
        format!("{layers}, distilled with α {}, T {}{hidden}", self.alpha, self.temperature)
    }
}

/// A model and the recipe of a student distilled from it, as a row's model is named: runs of
/// one base model with different recipes are different rows.
fn model_label(model: &str, distill: Option<&Distilled>) -> String {
    match distill {
        Some(d) => format!("{model} → {}", d.label()),
        None => model.into(),
    }
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub task: RunTask,
    /// The model trained from, and how a distilled student was trained (rows keep them apart).
    pub model: String,
    pub distill: Option<Distilled>,
    pub seed: u64,
    pub data_dir: Option<PathBuf>,
    /// NER runs: the training and validation files (the lexicon baseline is scored on them).
    pub ner_files: Option<(PathBuf, PathBuf)>,
    pub max_train_samples: Option<usize>,
    pub max_eval_samples: Option<usize>,
    pub eval: Map<String, Value>,
    pub train: Map<String, Value>,
    pub device: String,
}

fn read_json(path: &Path) -> Result<Value> {
    serde_json::from_slice(&crate::io::read(path)?).map_err(|e| Error::Json { path: path.into(), source: e })
}

impl Run {
    pub fn load(dir: &Path) -> Result<Run> {
        let cfg = read_json(&dir.join("run_config.json"))?;
        let cfg_path = dir.join("run_config.json");
        let args = cfg.get("args").ok_or_else(|| Error::file(&cfg_path, "no `args` object"))?;
        let command = cfg.get("command").and_then(Value::as_str);
        let file = args.get("train_file").and_then(Value::as_str).unwrap_or("own data");
        let task = if command == Some("classify") {
            let problem = serde_json::from_value(cfg.get("problem_type").cloned().unwrap_or_default())
                .map_err(|e| Error::file(&cfg_path, format!("`problem_type`: {e}")))?;
            RunTask::Own { name: crate::data::classify::data_name(Path::new(file)), problem }
        } else if command == Some("ner") {
            RunTask::Ner { name: format!("{} NER", crate::data::classify::data_name(Path::new(file))) }
        } else {
            RunTask::Glue(args.get("task").and_then(Value::as_str).ok_or_else(|| Error::file(&cfg_path, "no `args.task`"))?.parse()?)
        };
        let eval = read_json(&dir.join("eval_results.json"))?.as_object().cloned().unwrap_or_default();
        let train = read_json(&dir.join("train_results.json")).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        let usize_of = |v: Option<&Value>| v.and_then(Value::as_u64).map(|n| n as usize);
        let distill = args.get("distill").filter(|d| d.is_object()).map(|d| Distilled {
            teacher: d.get("teacher").and_then(Value::as_str).map(PathBuf::from).unwrap_or_default(),
            layers: cfg.pointer("/model_config/num_hidden_layers").and_then(Value::as_i64),
            alpha: d.get("alpha").and_then(Value::as_f64).unwrap_or(f64::NAN),
            temperature: d.get("temperature").and_then(Value::as_f64).unwrap_or(f64::NAN),
            hidden_loss_weight: d.get("hidden_loss_weight").and_then(Value::as_f64).unwrap_or(0.0),
        });
        Ok(Run {
            dir: dir.into(),
            task,
            model: args.get("model_name_or_path").and_then(Value::as_str).unwrap_or("?").into(),
            distill,
            seed: args.pointer("/train/seed").and_then(Value::as_u64).unwrap_or(0),
            data_dir: args.get("data_dir").and_then(Value::as_str).map(PathBuf::from),
            ner_files: (command == Some("ner")).then(|| (PathBuf::from(file), PathBuf::from(args.get("validation_file").and_then(Value::as_str).unwrap_or_default()))),
            max_train_samples: usize_of(args.get("max_train_samples")),
            max_eval_samples: usize_of(args.get("max_eval_samples")),
            eval,
            train,
            device: cfg.pointer("/environment/device").and_then(Value::as_str).unwrap_or("?").into(),
        })
    }

    /// `eval_<metric>` × 100.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.eval.get(&format!("eval_{name}")).and_then(Value::as_f64).map(|v| v * 100.0)
    }
}

/// Every directory under `paths`, searched recursively in name order; checkpoints, best_model
/// copies and hidden folders are skipped.
pub fn directories(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        out.push(dir.into());
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut subdirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        subdirs.sort();
        for d in subdirs {
            let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !(name.starts_with("checkpoint-") || name == "best_model" || name.starts_with('.')) {
                walk(&d, out);
            }
        }
    }
    let mut dirs = Vec::new();
    for p in paths {
        if !p.is_dir() {
            return Err(Error::file(p, "not a directory"));
        }
        walk(p, &mut dirs);
    }
    Ok(dirs)
}

/// The finished runs among `dirs`: those holding `eval_results.json` and `run_config.json`.
pub fn runs_in(dirs: &[PathBuf]) -> Result<Vec<Run>> {
    dirs.iter().filter(|d| d.join("eval_results.json").is_file() && d.join("run_config.json").is_file()).map(|d| Run::load(d)).collect()
}

/// The metrics a row shows: a GLUE task's in run_glue README order; for own data the problem's
/// main metric first.
pub fn row_metrics(task: &RunTask) -> &'static [&'static str] {
    match task {
        RunTask::Glue(t) => display_metrics(*t),
        RunTask::Own { problem: ProblemType::SingleLabel, .. } => &["accuracy", "f1_macro"],
        RunTask::Own { problem: ProblemType::MultiLabel, .. } => &["f1_macro", "f1_micro"],
        RunTask::Own { problem: ProblemType::Regression, .. } => &["pearson", "spearmanr"],
        RunTask::Ner { .. } => &["f1"],
    }
}

/// The metrics a task reports, in run_glue README order.
pub fn display_metrics(task: Task) -> &'static [&'static str] {
    match task {
        Task::Cola => &["matthews_correlation"],
        Task::Mrpc => &["f1", "accuracy"],
        Task::Stsb => &["pearson", "spearmanr"],
        Task::Qqp => &["accuracy", "f1"],
        Task::Mnli => &["accuracy", "accuracy_mm"],
        Task::Sst2 | Task::Qnli | Task::Rte | Task::Wnli => &["accuracy"],
    }
}

fn short(metric: &str) -> &str {
    match metric {
        "matthews_correlation" => "MCC",
        "accuracy" => "acc",
        "accuracy_mm" => "acc-mm",
        "spearmanr" => "spearman",
        m => m,
    }
}

/// The task score: the mean of the task's metrics (percent), if all are present.
pub fn task_score(task: Task, get: impl Fn(&str) -> Option<f64>) -> Option<f64> {
    let v: Option<Vec<f64>> = display_metrics(task).iter().map(|m| get(m)).collect();
    v.and_then(|v| stats::arithmetic_mean(&v))
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub task: String,
    pub distill: Option<Distilled>,
    /// A GLUE task (counted in the GLUE score), not a user's own data set.
    pub glue: bool,
    pub model: String,
    pub metrics: Vec<String>,
    pub seeds: Vec<u64>,
    /// Per metric, over seeds.
    pub ours: Vec<Summary>,
    pub ours_task_score: Option<Summary>,
    pub hf_reference: Option<Vec<f64>>,
    pub human: Option<Vec<f64>>,
    pub majority: Option<Vec<f64>>,
    pub majority_task_score: Option<f64>,
    pub diff_vs_hf: Option<f64>,
    pub runs: Vec<PathBuf>,
    pub curves: Vec<PathBuf>,
    pub train_runtime_s: Option<f64>,
    pub train_samples_per_second: Option<f64>,
    pub peak_rss_gib: Option<f64>,
    pub train_flops: Option<f64>,
    pub device: String,
}

impl Row {
    /// The row's model and student recipe ([`model_label`]).
    pub fn model_label(&self) -> String {
        model_label(&self.model, self.distill.as_ref())
    }

    /// The task, and the student's recipe for a distillation row.
    pub fn title(&self) -> String {
        match &self.distill {
            Some(d) => format!("{} ({})", self.task.to_uppercase(), d.label()),
            None => self.task.to_uppercase(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GlueScore {
    pub tasks: Vec<String>,
    /// (column, arithmetic mean, geometric mean — `Err` says which task made it undefined).
    pub means: Vec<(String, Option<f64>, std::result::Result<f64, String>)>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub glue_score: Vec<(String, GlueScore)>,
    pub sources: Vec<(String, String, String)>,
    pub seed_spread_png: Option<PathBuf>,
}

fn reference_values(source: &Source, task: &RunTask) -> Option<Vec<f64>> {
    if let RunTask::Ner { .. } = task {
        return source.task("ner").iter().find(|r| r.0 == "f1").map(|r| vec![r.1]);
    }
    let RunTask::Glue(task) = task else { return None };
    let rows = source.task(task.name());
    display_metrics(*task).iter().map(|m| rows.iter().find(|r| r.0 == *m).map(|r| r.1)).collect()
}

fn mean_of(runs: &[&Run], key: &str) -> Option<f64> {
    let v: Vec<f64> = runs.iter().filter_map(|r| r.train.get(key).and_then(Value::as_f64)).collect();
    stats::arithmetic_mean(&v)
}

/// Aggregates runs into rows (one per model and task, in GLUE order). Missing learning-curve PNGs
/// are drawn from each run's log; `assets_dir` receives the seed-spread chart.
pub fn build(runs: &[Run], assets_dir: Option<&Path>) -> Result<Report> {
    let mut groups: BTreeMap<(String, (usize, String)), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        groups.entry((model_label(&r.model, r.distill.as_ref()), r.task.order())).or_default().push(r);
    }
    let mut rows = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|r| r.seed);
        let task = &group[0].task;
        let metrics = row_metrics(task);
        let ours: Vec<Summary> = metrics
            .iter()
            .filter_map(|m| stats::summarize(&group.iter().filter_map(|r| r.metric(m)).collect::<Vec<_>>()))
            .collect();
        let scores: Vec<f64> = group
            .iter()
            .filter_map(|r| match task {
                RunTask::Glue(t) => task_score(*t, |m| r.metric(m)),
                RunTask::Own { .. } | RunTask::Ner { .. } => r.metric(metrics[0]),
            })
            .collect();
        let ours_task_score = stats::summarize(&scores);
        let hf = match task {
            RunTask::Ner { .. } => reference_values(&references::BERT_NER, task),
            _ => reference_values(&references::HF_RUN_GLUE, task),
        };
        let first = group[0];
        let majority = match (task, &first.data_dir) {
            (RunTask::Glue(t), Some(d)) => crate::eval::glue::majority_baseline(*t, d, first.max_train_samples, first.max_eval_samples)
                .map_err(|e| tracing::warn!("majority baseline for {}: {e}", t.name()))
                .ok(),
            // NER rows set the CoNLL-2003 lexicon baseline where the majority class goes.
            (RunTask::Ner { name }, _) => first.ner_files.as_ref().and_then(|(train, dev)| {
                crate::eval::lexicon::scores(train, dev).map_err(|e| tracing::warn!("lexicon baseline for {name}: {e}")).ok()
            }),
            _ => None,
        };
        let majority: Option<Vec<f64>> = majority.and_then(|m| {
            metrics.iter().map(|k| m.get(&format!("eval_{k}")).and_then(Value::as_f64).map(|v| v * 100.0)).collect()
        });
        let majority_task_score = majority.as_ref().and_then(|v| stats::arithmetic_mean(v));
        let hf_score = hf.as_ref().and_then(|v| stats::arithmetic_mean(v));
        let mut curves = Vec::new();
        for r in &group {
            let png = r.dir.join("train_curves.png");
            let log = r.dir.join("train_log.jsonl");
            if !png.is_file() && log.is_file() {
                crate::eval::plots::learning_curves(&log, &png, &format!("{} seed {}", task.name(), r.seed))?;
            }
            if png.is_file() {
                curves.push(png);
            }
        }
        rows.push(Row {
            glue: matches!(task, RunTask::Glue(_)),
            task: task.name(),
            distill: first.distill.clone(),
            model: first.model.clone(),
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            seeds: group.iter().map(|r| r.seed).collect(),
            diff_vs_hf: ours_task_score.as_ref().zip(hf_score).map(|(o, h)| o.mean - h),
            ours,
            ours_task_score,
            human: reference_values(&references::GLUE_HUMAN, task),
            hf_reference: hf,
            majority,
            majority_task_score,
            runs: group.iter().map(|r| r.dir.clone()).collect(),
            curves,
            train_runtime_s: mean_of(&group, "train_runtime"),
            train_samples_per_second: mean_of(&group, "train_samples_per_second"),
            peak_rss_gib: mean_of(&group, "peak_rss_kib").map(|k| k / (1024.0 * 1024.0)),
            train_flops: mean_of(&group, "train_flops_estimate"),
            device: first.device.clone(),
        });
    }

    let mut models: Vec<String> = rows.iter().filter(|r| r.glue).map(Row::model_label).collect();
    models.dedup();
    let glue_score = models
        .into_iter()
        .map(|model| {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.model_label() == model && r.glue && r.ours_task_score.is_some()).collect();
            let tasks: Vec<String> = mine.iter().map(|r| r.task.clone()).collect();
            let columns: [(&str, Vec<Option<f64>>); 4] = [
                ("finetune", mine.iter().map(|r| r.ours_task_score.as_ref().map(|s| s.mean)).collect()),
                (references::HF_RUN_GLUE.name, mine.iter().map(|r| r.hf_reference.as_ref().and_then(|v| stats::arithmetic_mean(v))).collect()),
                (references::GLUE_HUMAN.name, mine.iter().map(|r| r.human.as_ref().and_then(|v| stats::arithmetic_mean(v))).collect()),
                ("majority class", mine.iter().map(|r| r.majority_task_score).collect()),
            ];
            let means = columns
                .into_iter()
                .map(|(name, vals)| {
                    let vals: Option<Vec<f64>> = vals.into_iter().collect();
                    let geometric = match &vals {
                        None => Err("a task score is missing".to_string()),
                        Some(v) => stats::geometric_mean(v).map_err(|i| format!("undefined: {} score {:.2} < 0", tasks[i], v[i])),
                    };
                    (name.to_string(), vals.as_ref().and_then(|v| stats::arithmetic_mean(v)), geometric)
                })
                .collect();
            (model, GlueScore { tasks, means })
        })
        .collect();

    let seed_spread_png = match assets_dir {
        Some(dir) if rows.iter().any(|r| r.ours_task_score.as_ref().is_some_and(|s| s.n > 1)) => {
            let png = dir.join("seeds_spread.png");
            let data: Vec<(String, Vec<f64>)> =
                rows.iter().filter_map(|r| r.ours_task_score.as_ref().map(|s| (r.task.clone(), s.values.clone()))).collect();
            crate::eval::plots::seed_spread(&data, &png, "task score (%)")?;
            Some(png)
        }
        _ => None,
    };
    let sources = references::ALL.iter().map(|s| (s.name.to_string(), s.split.to_string(), s.citation.to_string())).collect();
    Ok(Report { rows, glue_score, sources, seed_spread_png })
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn fmt_list(v: &Option<Vec<f64>>) -> String {
    v.as_ref().map_or("–".into(), |v| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / "))
}

fn fmt_flops(f: Option<f64>) -> String {
    match f {
        None => "–".into(),
        Some(f) => {
            let (d, u) = [(1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP")].into_iter().find(|(d, _)| f >= *d).unwrap_or((1.0, "FLOP"));
            format!("{:.2} {u}", f / d)
        }
    }
}

fn fmt_duration(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| if s >= 60.0 { format!("{:.1} min", s / 60.0) } else { format!("{s:.1} s") })
}

/// Relative path from `base` to `target` when `target` lies under `base`, else `target` as is.
fn rel(target: &Path, base: Option<&Path>) -> String {
    let t = std::fs::canonicalize(target).unwrap_or_else(|_| target.into());
    base.and_then(|b| std::fs::canonicalize(b).ok())
        .and_then(|b| t.strip_prefix(&b).ok().map(Path::to_path_buf))
        .unwrap_or(t)
        .display()
        .to_string()
}

/// Table cells of a row, shared by the Markdown and HTML renderings.
fn cells(r: &Row) -> Vec<String> {
    let ours = r.ours.iter().map(|s| format!("{:.2} ± {:.2}", s.mean, s.std)).collect::<Vec<_>>().join(" / ");
    let n = r.ours.first().map_or(0, |s| s.n);
    vec![
        r.title(),
        r.metrics.iter().map(|m| short(m)).collect::<Vec<_>>().join(" / "),
        format!("{ours} (n={n})"),
        fmt_list(&r.hf_reference),
        r.diff_vs_hf.map_or("–".into(), |d| format!("{d:+.2}")),
        fmt_list(&r.human),
        fmt_list(&r.majority),
        fmt_duration(r.train_runtime_s),
        fmt_opt(r.train_samples_per_second),
        r.peak_rss_gib.map_or("–".into(), |g| format!("{g:.2} GiB")),
        fmt_flops(r.train_flops),
        r.device.clone(),
    ]
}

const HEADER: [&str; 12] = [
    "task",
    "metric",
    "finetune mean ± std",
    "HF bert-base-cased (dev)",
    "Δ task score vs HF",
    "human (test)",
    "majority class (dev)",
    "train time / run",
    "train ex/s",
    "peak RSS",
    "train FLOPs (est.)",
    "device",
];

/// A GLUE-score block: its title, then (mean name, arithmetic, geometric) cells.
type ScoreLines = (String, Vec<(String, String, String)>);

fn score_lines(report: &Report) -> Vec<ScoreLines> {
    report
        .glue_score
        .iter()
        .map(|(model, g)| {
            let cols = g
                .means
                .iter()
                .map(|(name, a, geo)| {
                    let geo = match geo {
                        Ok(v) => format!("{v:.2}"),
                        Err(why) => why.clone(),
                    };
                    (name.clone(), fmt_opt(*a), geo)
                })
                .collect();
            (format!("{model} — {} task(s): {}", g.tasks.len(), g.tasks.join(", ")), cols)
        })
        .collect()
}

/// The report in Markdown; `extra` (more tables) goes after the GLUE score.
pub fn markdown(report: &Report, base: Option<&Path>, extra: &str) -> String {
    let mut s = String::from("# finetune report\n\n");
    let models: Vec<String> = report.rows.iter().map(Row::model_label).collect();
    s += &format!("Model(s): {}. Scores in percent; ours over seeds as mean ± sample std.\n\n", dedup(models.iter().map(String::as_str).collect()).join(", "));
    s += &format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    for r in &report.rows {
        s += &format!("| {} |\n", cells(r).join(" | "));
    }
    if report.rows.iter().any(|r| r.task.ends_with(" NER")) {
        s += "\nNER rows: entity-level F1 (seqeval); the reference column holds the BERT paper's BERT-base dev F1, the baseline column the CoNLL-2003 shared task's lexicon baseline on the run's own files.\n";
    }
    if !report.glue_score.is_empty() {
        s += "\nGLUE score over the GLUE tasks above (task score = its metric, or the mean of its two metrics, averaged before the mean over tasks):\n\n";
    }
    for (title, cols) in score_lines(report) {
        s += &format!("{title}\n\n| | arithmetic mean | geometric mean |\n|---|---|---|\n");
        for (name, a, g) in cols {
            s += &format!("| {name} | {a} | {g} |\n");
        }
        s += "\n";
    }
    if !extra.is_empty() {
        s += &format!("{extra}\n");
    }
    if let Some(png) = &report.seed_spread_png {
        s += &format!("![task scores over seeds]({})\n\n", rel(png, base));
    }
    s += "Learning curves:\n\n";
    for r in &report.rows {
        let links: Vec<String> = r.curves.iter().zip(&r.seeds).map(|(p, seed)| format!("[seed {seed}]({})", rel(p, base))).collect();
        s += &format!("- {}: {}\n", r.title(), links.join(", "));
    }
    s += "\nSources:\n\n";
    for (name, split, cite) in &report.sources {
        s += &format!("- **{name}** ({split}): {cite}\n");
    }
    s
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v.dedup();
    v
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn img(png: &Path) -> Result<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(crate::io::read(png)?);
    Ok(format!("<img style=\"max-width:100%\" src=\"data:image/png;base64,{b64}\">"))
}

/// A self-contained HTML page: charts are embedded as data URIs; `extra` (more tables, HTML)
/// goes after the GLUE score.
pub fn html(report: &Report, extra: &str) -> Result<String> {
    let mut s = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>finetune report</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child,th{text-align:left}</style></head><body><h1>finetune report</h1>\n<table><tr>");
    for h in HEADER {
        s += &format!("<th>{}</th>", html_escape(h));
    }
    s += "</tr>\n";
    for r in &report.rows {
        s += "<tr>";
        for c in cells(r) {
            s += &format!("<td>{}</td>", html_escape(&c));
        }
        s += "</tr>\n";
    }
    s += "</table>\n";
    for (title, cols) in score_lines(report) {
        s += &format!("<h3>GLUE score: {}</h3><table><tr><th></th><th>arithmetic mean</th><th>geometric mean</th></tr>", html_escape(&title));
        for (name, a, g) in cols {
            s += &format!("<tr><td>{}</td><td>{a}</td><td>{}</td></tr>", html_escape(&name), html_escape(&g));
        }
        s += "</table>\n";
    }
    s += extra;
    if let Some(png) = &report.seed_spread_png {
        s += &format!("<h2>Scores over seeds</h2>{}\n", img(png)?);
    }
    s += "<h2>Learning curves</h2>\n";
    for r in &report.rows {
        for (png, seed) in r.curves.iter().zip(&r.seeds) {
            s += &format!("<h3>{} seed {seed}</h3>{}\n", html_escape(&r.title()), img(png)?);
        }
    }
    s += "<h2>Sources</h2><ul>";
    for (name, split, cite) in &report.sources {
        s += &format!("<li><b>{}</b> ({}): {}</li>", html_escape(name), html_escape(split), html_escape(cite));
    }
    s += "</ul></body></html>\n";
    Ok(s)
}

pub fn json(report: &Report) -> Value {
    json!(report)
}
