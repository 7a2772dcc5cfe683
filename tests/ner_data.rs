//! Token-classification data: the CoNLL and JSON lines readers (IOB1/BIOES → IOB2, both
//! `-DOCSTART-` forms), their errors (file and line named, never a panic), the label list, and
//! run_ner's feature alignment (label on the first sub-token, -100 elsewhere, `label_all_tokens`).
mod common;
use finetune::data::conll::{self, ReadOptions, TagScheme};
use finetune::data::ner_features::{self, IGNORE};
use finetune::data::tokenize::load_tokenizer;
use std::path::PathBuf;

fn read(name: &str, text: &[u8], opts: &ReadOptions) -> finetune::error::Result<(Vec<conll::Sentence>, TagScheme)> {
    let (_dir, path) = common::temp_file(name, text);
    conll::read(&path, opts)
}

fn err(name: &str, text: &[u8], opts: &ReadOptions) -> String {
    read(name, text, opts).unwrap_err().to_string()
}

const CONLL: &str = "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\ncall NN I-NP O\n\n-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\nand CC O O\nJohn NNP I-NP B-PER\n\n";

#[test]
fn conll_columns_iob1_become_iob2_and_document_lines_are_skipped() {
    let (s, scheme) = read("train.txt", CONLL.as_bytes(), &ReadOptions::default()).unwrap();
    assert_eq!(scheme, TagScheme::Iob1, "an I- that begins an entity means IOB1");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].tokens, ["EU", "rejects", "German", "call"]);
    assert_eq!(s[0].tags, ["B-ORG", "O", "B-MISC", "O"]);
    assert_eq!(s[1].tags, ["B-PER", "I-PER", "O", "B-PER"]);
    assert_eq!((s[0].line, s[1].line), (3, 10));
    assert_eq!(conll::label_list(&s), ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]);
    // Read as IOB2 the same file keeps its tags.
    let (s2, _) = read("train.txt", CONLL.as_bytes(), &ReadOptions { scheme: TagScheme::Iob2, ..Default::default() }).unwrap();
    assert_eq!(s2[0].tags, ["I-ORG", "O", "I-MISC", "O"]);
}

#[test]
fn bioes_and_crlf_and_json_lines() {
    let (s, scheme) = read("a.txt", b"New B-LOC\r\nYork E-LOC\r\nis O\r\nbig O\r\nParis S-LOC\r\n", &ReadOptions::default()).unwrap();
    assert_eq!(scheme, TagScheme::Bioes);
    assert_eq!(s[0].tags, ["B-LOC", "I-LOC", "O", "O", "B-LOC"]);
    let json = b"{\"tokens\": [\"Anna\", \"lives\", \"here\"], \"ner_tags\": [\"B-PER\", \"O\", \"O\"]}\n\n{\"tokens\": [\"Bob\"], \"ner_tags\": [\"B-PER\"]}\n";
    let (s, scheme) = read("a.jsonl", json, &ReadOptions::default()).unwrap();
    assert_eq!((s.len(), scheme, s[1].line), (2, TagScheme::Iob2, 3));
    let ids = b"{\"words\": [\"Anna\", \"x\"], \"tags\": [1, 0]}\n";
    let opts = ReadOptions { label_list: Some(vec!["O".into(), "B-PER".into()]), text_column_name: "words".into(), label_column_name: "tags".into(), ..Default::default() };
    assert_eq!(read("a.json", ids, &opts).unwrap().0[0].tags, ["B-PER", "O"]);
}

#[test]
fn malformed_files_name_file_line_and_what_was_expected() {
    let d = ReadOptions::default();
    let e = err("train.txt", b"EU I-ORG\nrejects\n", &d);
    assert!(e.contains("train.txt") && e.contains(":2:") && e.contains("expected a token and its tag"), "{e}");
    let e = err("train.txt", b"EU I-ORG\nr\xe9jects O\n", &d);
    assert!(e.contains(":2:") && e.contains("not UTF-8"), "{e}");
    let e = err("train.txt", b"EU I-ORG\nrejects X-FOO\n", &d);
    assert!(e.contains(":2:") && e.contains("X-FOO"), "{e}");
    let e = err("train.txt", b"\n\n", &d);
    assert!(e.contains("no sentences"), "{e}");
    let e = err("a.jsonl", b"{\"tokens\": [\"a\"], \"ner_tags\": [\"O\"]}\n{\"tokens\": [\"a\", \"b\"], \"ner_tags\": [\"O\"]}\n", &d);
    assert!(e.contains(":2:") && e.contains("2 tokens but 1 tags"), "{e}");
    let e = err("a.jsonl", b"{\"tokens\": [\"a\"], \"ner_tags\": [0]}\n", &d);
    assert!(e.contains(":1:") && e.contains("--label-list"), "{e}");
    let e = err("a.jsonl", b"{\"tokens\": [\"a\"], \"ner_tags\": [7]}\n", &ReadOptions { label_list: Some(vec!["O".into()]), ..Default::default() });
    assert!(e.contains("outside --label-list"), "{e}");
    let e = err("a.jsonl", b"{\"tokens\": [\"a\"]\n", &d);
    assert!(e.contains(":1:") && e.contains("not valid JSON"), "{e}");
    // A validation tag the training labels lack.
    let (dir, dev) = common::temp_file("dev.txt", b"x O\ny B-ORG\n\nz B-LOC\n");
    let (s, _) = conll::read(&dev, &d).unwrap();
    let e = conll::check_labels(&dev, &s, &["B-ORG".into(), "O".into()]).unwrap_err().to_string();
    assert!(e.contains("dev.txt") && e.contains(":4:") && e.contains("B-LOC"), "{e}");
    drop(dir);
}

#[test]
fn first_sub_token_carries_the_label_as_run_ner_aligns_it() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/electra");
    let tok = load_tokenizer(&model).unwrap();
    let sentence = conll::Sentence { tokens: vec!["Zürich-based".into(), "owners".into(), "sold".into()], tags: vec!["B-MISC".into(), "O".into(), "O".into()], line: 1 };
    let labels: Vec<String> = ["B-MISC", "I-MISC", "O"].iter().map(|s| s.to_string()).collect();
    let t = ner_features::tokenizer(&tok, 64).unwrap();
    let f = &ner_features::build(&t, std::slice::from_ref(&sentence), &labels, false).unwrap().features[0];
    let enc = t.encode(sentence.tokens.iter().map(String::as_str).collect::<Vec<_>>(), true).unwrap();
    let words = enc.get_word_ids();
    assert!(words.iter().filter(|w| **w == Some(0)).count() > 1, "the first word splits into sub-tokens: {:?}", enc.get_tokens());
    for (i, w) in words.iter().enumerate() {
        let first = w.is_some() && (i == 0 || words[i - 1] != *w);
        let want = if !first { IGNORE } else { labels.iter().position(|l| *l == sentence.tags[w.unwrap() as usize]).unwrap() as i64 };
        assert_eq!(f.labels[i], want, "position {i}");
    }
    // label_all_tokens: the later sub-tokens of a B- word get its I- label.
    let all = &ner_features::build(&t, std::slice::from_ref(&sentence), &labels, true).unwrap().features[0];
    let second = words.iter().enumerate().filter(|(_, w)| **w == Some(0)).nth(1).unwrap().0;
    assert_eq!((all.labels[second - 1], all.labels[second]), (0, 1));
    // Truncation is counted.
    let short = ner_features::tokenizer(&tok, 4).unwrap();
    assert_eq!(ner_features::build(&short, std::slice::from_ref(&sentence), &labels, false).unwrap().truncated, 1);
}
