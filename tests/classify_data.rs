//! `finetune classify`'s data layer: every file format with its quoting edge cases, BOMs and
//! encodings; problem-type inference and label lists; the errors a broken file must give (file,
//! line, what was expected) and `--skip-bad-rows`; the stratified split against the order
//! transformers' Trainer draws; the leakage count.
mod common;
use common::temp_file;
use finetune::data::classify::{self, Columns, ProblemType, RawLabel, Target};
use finetune::data::table::{self, Encoding, Format, ReadOptions};
use serde_json::Value;

fn cols(text: &[&str], label: &str) -> Columns {
    Columns { text: text.iter().map(|s| s.to_string()).collect(), label: label.into(), label_delimiter: None }
}

fn texts(t: &table::Table, col: &str) -> Vec<String> {
    t.records.iter().map(|r| r.fields[col].as_str().unwrap().to_string()).collect()
}

#[test]
fn csv_quoting_edge_cases_and_bom() {
    // BOM, a quoted comma, doubled quotes, an embedded tab and an embedded newline (the record
    // after it starts on line 5).
    let csv = "\u{feff}text,label\n\"a, b\",x\n\"she said \"\"hi\"\"\",y\n\"tab\there\nnext line\",x\nlast,y\n";
    let (_d, p) = temp_file("d.csv", csv.as_bytes());
    let t = table::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(t.columns, ["text", "label"], "the BOM is not part of the first column's name");
    assert_eq!(texts(&t, "text"), ["a, b", "she said \"hi\"", "tab\there\nnext line", "last"]);
    assert_eq!(t.records.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3, 4, 6]);
}

#[test]
fn tsv_with_csv_quoting_and_column_names_for_headerless_files() {
    // GoEmotions' layout: no header, text / labels / id, some texts CSV-quoted.
    let tsv = "My favourite food.\t27\tid1\n\"Lol \"\"weapons grade\"\", I love it\"\t1,4\tid2\n";
    let (_d, p) = temp_file("d.tsv", tsv.as_bytes());
    let opts = ReadOptions { column_names: Some(vec!["text".into(), "labels".into(), "id".into()]), ..Default::default() };
    let t = table::read(&p, &opts).unwrap();
    assert_eq!(texts(&t, "text"), ["My favourite food.", "Lol \"weapons grade\", I love it"]);
    assert_eq!(texts(&t, "labels"), ["27", "1,4"]);
}

#[test]
fn jsonl_json_and_regex_lines() {
    let (_d, p) = temp_file("d.jsonl", b"{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\", \"label\": [\"x\", \"y\"]}\n");
    let t = table::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(t.records.len(), 2);
    assert_eq!(t.records[1].line, 3, "blank lines still count");
    assert_eq!(t.records[1].fields["label"], serde_json::json!(["x", "y"]));

    let (_d, p) = temp_file("d.json", b"[{\"text\": \"a\", \"label\": 0.5}, {\"text\": \"b\", \"label\": 2.25}]");
    let t = table::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(t.format, Format::Json);
    let (raw, _) = classify::raw_examples(&t, &cols(&["text"], "label"), true, false).unwrap();
    assert_eq!(classify::infer_problem_type(&raw, false), ProblemType::Regression);

    // TREC's line format, Latin-1 byte included.
    let (_d, p) = temp_file("trec.txt", b"DESC:manner How did serfdom develop ?\nLOC:city Which city has a sister\xf0city ?\n");
    let re = regex::Regex::new(r"^(?P<label>[^:]+):\S+ (?P<text>.+)$").unwrap();
    let opts = ReadOptions { format: Some(Format::Lines), line_regex: Some(re.clone()), ..Default::default() };
    let err = table::read(&p, &opts).unwrap_err().to_string();
    assert!(err.contains("trec.txt:2") && err.contains("0xF0") && err.contains("--encoding latin-1"), "{err}");
    let t = table::read(&p, &ReadOptions { encoding: Encoding::Latin1, ..opts }).unwrap();
    assert_eq!(texts(&t, "label"), ["DESC", "LOC"]);
    assert_eq!(texts(&t, "text")[1], "Which city has a sisterðcity ?");
}

#[test]
fn problem_types_and_label_lists_are_inferred_as_run_classification_does() {
    let raw = |labels: &[&str]| -> Vec<classify::RawExample> {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| classify::RawExample {
                line: i + 2,
                text_a: format!("t{i}"),
                text_b: None,
                label: Some(RawLabel::One { text: l.to_string(), float: l.contains('.') }),
            })
            .collect()
    };
    assert_eq!(classify::infer_problem_type(&raw(&["5.000", "3.8", "0"]), false), ProblemType::Regression);
    assert_eq!(classify::infer_problem_type(&raw(&["1", "0", "10"]), false), ProblemType::SingleLabel);
    assert_eq!(classify::infer_problem_type(&raw(&["pos", "neg"]), false), ProblemType::SingleLabel);
    assert_eq!(classify::infer_problem_type(&raw(&["a", "b"]), true), ProblemType::MultiLabel);
    // Integers sort numerically, names by code point (Python's sorted()).
    assert_eq!(classify::label_list_from(&raw(&["10", "2", "1", "2"])), ["1", "2", "10"]);
    assert_eq!(classify::label_list_from(&raw(&["b", "B", "a"])), ["B", "a", "b"]);
}

#[test]
fn labels_map_to_ids_by_name_or_by_index_into_a_given_list() {
    let tsv = "t1\t4,27\nt2\t0\n";
    let (_d, p) = temp_file("d.tsv", tsv.as_bytes());
    let t = table::read(&p, &ReadOptions { column_names: Some(vec!["text".into(), "labels".into()]), ..Default::default() }).unwrap();
    let c = Columns { label_delimiter: Some(",".into()), ..cols(&["text"], "labels") };
    let (raw, _) = classify::raw_examples(&t, &c, true, false).unwrap();
    let names: Vec<String> = (0..28).map(|i| format!("emotion{i}")).collect();
    let targets = classify::map_labels(&t, &raw, ProblemType::MultiLabel, &names, true).unwrap();
    assert_eq!(targets, [Some(Target::Classes(vec![4, 27])), Some(Target::Classes(vec![0]))]);
    // Without a given list, ids are names like any other, and 28 is out of range with one.
    let err = classify::map_labels(&t, &raw, ProblemType::MultiLabel, &names[..5], true).unwrap_err().to_string();
    assert!(err.contains("`27` (line 1)") && err.contains("not in --label-list"), "{err}");
    let labels = classify::labels_of(&targets, ProblemType::MultiLabel, 28).unwrap();
    assert_eq!(labels.len(), 2);
}

#[test]
fn broken_files_name_file_line_and_what_was_expected() {
    let c = cols(&["text"], "label");
    // A missing column lists the columns found.
    let (_d, p) = temp_file("a.csv", b"sentence,label\nhi,x\n");
    let t = table::read(&p, &ReadOptions::default()).unwrap();
    let err = classify::raw_examples(&t, &c, true, false).unwrap_err().to_string();
    assert!(err.contains("a.csv") && err.contains("no column `text`") && err.contains("sentence, label") && err.contains("--text-column-names"), "{err}");
    // An empty text, a missing label, a row with too few fields: each names its line.
    for (body, line, what) in [
        ("text,label\nok,x\n  ,y\n", 3, "empty text in column `text`"),
        ("text,label\nok,x\nno label,\n", 3, "no label in column `label`"),
        ("text,label\nok,x\nok,x\njust one field\n", 4, "1 fields, expected 2"),
    ] {
        let (_d, p) = temp_file("b.csv", body.as_bytes());
        let err = table::read(&p, &ReadOptions::default()).and_then(|t| classify::raw_examples(&t, &c, true, false).map(|_| ()));
        let err = err.unwrap_err().to_string();
        assert!(err.contains(&format!("b.csv:{line}:")) && err.contains(what) && err.contains("--skip-bad-rows"), "{err}");
        // --skip-bad-rows drops the row and counts it.
        let t = table::read(&p, &ReadOptions { skip_bad_rows: true, ..Default::default() }).unwrap();
        let (raw, skipped) = classify::raw_examples(&t, &c, true, true).unwrap();
        assert_eq!((raw.len(), skipped.len(), skipped[0].0), (body.lines().count() - 2, 1, line), "{body}");
    }
    // Malformed JSON lines and a JSON array element that is no record.
    let (_d, p) = temp_file("c.jsonl", b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\",\n");
    let err = table::read(&p, &ReadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("c.jsonl:2:") && err.contains("not valid JSON"), "{err}");
    let (_d, p) = temp_file("d.json", b"[{\"text\": \"a\", \"label\": \"x\"}, 3]");
    let err = table::read(&p, &ReadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("d.json") && err.contains("record 2") && err.contains("expected a JSON object"), "{err}");
    // An unknown extension asks for --format.
    let (_d, p) = temp_file("e.dat", b"x");
    assert!(table::read(&p, &ReadOptions::default()).unwrap_err().to_string().contains("--format"));
}

#[test]
fn labels_outside_the_list_or_only_in_validation_are_listed() {
    let c = cols(&["text"], "label");
    let (_d, p) = temp_file("train.csv", b"text,label\na,pos\nb,neg\n");
    let t = table::read(&p, &ReadOptions::default()).unwrap();
    let (train, _) = classify::raw_examples(&t, &c, true, false).unwrap();
    let names = classify::label_list_from(&train);
    let (_d2, v) = temp_file("dev.csv", b"text,label\nc,pos\nd,neutral\ne,mixed\nf,neutral\n");
    let vt = table::read(&v, &ReadOptions::default()).unwrap();
    let (dev, _) = classify::raw_examples(&vt, &c, true, false).unwrap();
    let err = classify::map_labels(&vt, &dev, ProblemType::SingleLabel, &names, false).unwrap_err().to_string();
    assert!(err.contains("dev.csv") && err.contains("2 label(s) never seen in the training file") && err.contains("`mixed` (line 4)") && err.contains("`neutral` (line 3)"), "{err}");
    let err = classify::map_labels(&vt, &dev, ProblemType::SingleLabel, &names, true).unwrap_err().to_string();
    assert!(err.contains("not in --label-list"), "{err}");
    // Regression needs numbers.
    let err = classify::map_labels(&t, &train, ProblemType::Regression, &[], false).unwrap_err().to_string();
    assert!(err.contains("train.csv:2:") && err.contains("`pos` is not a number"), "{err}");
}

/// The split's permutation is `torch.randperm(20, generator=manual_seed(42))`, the order
/// transformers' Trainer visits (tests in data::batch): 2, 14, 18, 15, 1, 10, 0, ... With labels
/// i % 2 and a fraction of 0.2, each class gives the first two of its rows in that order.
#[test]
fn stratified_split_follows_the_seeded_permutation() {
    let targets: Vec<Option<Target>> = (0..20).map(|i| Some(Target::Class(i % 2))).collect();
    let (train, val) = classify::stratified_split(&targets, 0.2, 42).unwrap();
    assert_eq!(val, [1, 2, 14, 15]);
    assert_eq!(train.len(), 16);
    assert!(train.iter().all(|i| !val.contains(i)));
    let (_, other) = classify::stratified_split(&targets, 0.2, 43).unwrap();
    assert_ne!(other, val);
    // Proportions hold per class on a skewed set.
    let targets: Vec<Option<Target>> = (0..1000).map(|i| Some(Target::Class(if i % 10 == 0 { 1 } else { 0 }))).collect();
    let (_, val) = classify::stratified_split(&targets, 0.1, 0).unwrap();
    let ones = val.iter().filter(|&&i| i % 10 == 0).count();
    assert_eq!((val.len(), ones), (100, 10));
    assert!(classify::stratified_split(&targets, 1.0, 0).is_err());
}

#[test]
fn leakage_counts_validation_texts_seen_in_training() {
    let ex = |a: &str, b: Option<&str>| classify::RawExample { line: 1, text_a: a.into(), text_b: b.map(str::to_string), label: None };
    let train = [ex("a", None), ex("b", Some("c")), ex("d", None)];
    let val = [ex("a", None), ex("b", Some("c")), ex("b", Some("x")), ex("e", None), ex("a", None)];
    assert_eq!(classify::leaked(&train, &val), 3);
}

#[test]
fn json_numbers_keep_their_kind() {
    let (_d, p) = temp_file("d.jsonl", b"{\"text\": \"a\", \"label\": 3}\n{\"text\": \"b\", \"label\": 1}\n");
    let t = table::read(&p, &ReadOptions::default()).unwrap();
    let (raw, _) = classify::raw_examples(&t, &cols(&["text"], "label"), true, false).unwrap();
    assert_eq!(classify::infer_problem_type(&raw, false), ProblemType::SingleLabel);
    assert!(matches!(&t.records[0].fields["label"], Value::Number(_)));
}

/// Issue 39: labels whose inferred problem type hides a mistake. A word among decimal scores is
/// an error on its line (it made a classifier with a class per score); one list among names and
/// numbers among names are warnings naming the first line; --label-list makes numbers indices.
#[test]
fn mixed_labels_are_named_when_the_problem_type_is_inferred() {
    let check = |content: &str, list_given: bool| {
        let (_d, p) = temp_file("d.jsonl", content.as_bytes());
        let t = table::read(&p, &ReadOptions::default()).unwrap();
        let (raw, _) = classify::raw_examples(&t, &cols(&["text"], "label"), true, false).unwrap();
        let problem = classify::infer_problem_type(&raw, false);
        (problem, classify::check_inferred_labels(&t, &raw, problem, list_given).map_err(|e| e.to_string()))
    };
    let scores = "{\"text\": \"a\", \"label\": 0.5}\n{\"text\": \"b\", \"label\": 2.25}\n{\"text\": \"c\", \"label\": \"high\"}\n{\"text\": \"d\", \"label\": 1.5}\n";
    let (p, r) = check(scores, false);
    assert_eq!(p, ProblemType::SingleLabel);
    let err = r.unwrap_err();
    assert!(err.contains("d.jsonl:3") && err.contains("label `high` is not a number, but 3 of 4 labels are decimals"), "{err}");
    let one_list = "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": [\"pos\", \"neg\"]}\n{\"text\": \"c\", \"label\": \"neg\"}\n";
    let (p, r) = check(one_list, false);
    assert_eq!(p, ProblemType::MultiLabel);
    assert_eq!(r.unwrap(), ["1 of 3 training labels are lists (the first on line 2): training multi-label; pass --problem-type single_label if those lists are mistakes"]);
    let mixed = "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": 1}\n{\"text\": \"c\", \"label\": \"neg\"}\n";
    let (_, r) = check(mixed, false);
    assert_eq!(r.unwrap(), ["labels mix numbers (`1`, line 2) and names (`pos`, line 1): each value is a class of its own"]);
    assert!(check(mixed, true).1.unwrap().is_empty());
    let clean = "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": \"neg\"}\n";
    assert!(check(clean, false).1.unwrap().is_empty());
}
