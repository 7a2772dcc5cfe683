//! GLUE readers: every task's file layout (rows written here in each format), and bad input that
//! must fail with the file, the line and what was expected.
mod common;
use common::temp_file;
use finetune::data::glue::{read_labelled, read_unlabelled, Target, Task};

fn err_of<T: std::fmt::Debug>(r: finetune::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn task_names_parse_like_run_glue() {
    assert_eq!("RTE".parse::<Task>().unwrap(), Task::Rte);
    assert_eq!("sst-2".parse::<Task>().unwrap(), Task::Sst2);
    assert_eq!("STS-B".parse::<Task>().unwrap(), Task::Stsb);
    let e = err_of("glu".parse::<Task>());
    assert!(e.contains("unknown task `glu`") && e.contains("rte"), "{e}");
}

#[test]
fn cola_has_no_header_and_a_test_file_with_one() {
    let (_d, p) = temp_file("train.tsv", b"gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.");
    let ex = read_labelled(Task::Cola, &p).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[1].text_a, "They drank the pub.");
    assert_eq!(ex[1].target, Some(Target::Class(0)));
    let (_d, p) = temp_file("test.tsv", b"index\tsentence\n0\tBill whistled past the house.\n");
    let ex = read_unlabelled(Task::Cola, &p).unwrap();
    assert_eq!((ex[0].id.as_str(), ex[0].text_a.as_str(), ex[0].target), ("0", "Bill whistled past the house.", None));
}

#[test]
fn mrpc_header_with_bom() {
    let (_d, p) = temp_file(
        "train.tsv",
        "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only \" the witness \" .\n".as_bytes(),
    );
    let ex = read_labelled(Task::Mrpc, &p).unwrap();
    assert_eq!(ex[0].text_b.as_deref(), Some("Referring to him as only \" the witness \" ."));
    assert_eq!(ex[0].target, Some(Target::Class(1)));
}

#[test]
fn stsb_scores_are_regression_targets() {
    let h = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
    let (_d, p) = temp_file("dev.tsv", format!("{h}0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t5.000\n").as_bytes());
    let ex = read_labelled(Task::Stsb, &p).unwrap();
    assert_eq!(ex[0].target, Some(Target::Score(5.0)));
    let (_d, p) = temp_file("test.tsv", b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n0\tg\tf\ty\t0\tn\tn\tA girl is styling her hair.\tA girl is brushing her hair.\n");
    assert_eq!(read_unlabelled(Task::Stsb, &p).unwrap()[0].text_b.as_deref(), Some("A girl is brushing her hair."));
}

#[test]
fn mnli_uses_gold_label_and_qqp_its_own_columns() {
    let h = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
    let row = "0\t63735\t63735n\tslate\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tThe new rights are nice enough\tEveryone really likes the newest benefits \tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n";
    let (_d, p) = temp_file("dev_matched.tsv", format!("{h}{row}").as_bytes());
    let ex = read_labelled(Task::Mnli, &p).unwrap();
    assert_eq!(ex[0].target, Some(Target::Class(1)), "neutral is id 1 in run_glue's MNLI label order");
    let (_d, p) = temp_file("train.tsv", b"id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration is enough?\t0\n");
    let ex = read_labelled(Task::Qqp, &p).unwrap();
    assert_eq!((ex[0].text_a.as_str(), ex[0].target), ("How is the life of a math student?", Some(Target::Class(0))));
    let (_d, p) = temp_file("test.tsv", b"id\tquestion1\tquestion2\n0\tWhy?\tWhy not?\n");
    assert_eq!(read_unlabelled(Task::Qqp, &p).unwrap()[0].id, "0");
}

#[test]
fn sentence_and_pair_tasks_on_their_layouts() {
    let (_d, p) = temp_file("train.tsv", b"sentence\tlabel\nhide new secretions from the parental units \t0\n");
    assert_eq!(read_labelled(Task::Sst2, &p).unwrap()[0].text_b, None);
    for (task, a, b) in [(Task::Qnli, "question", "sentence"), (Task::Rte, "sentence1", "sentence2"), (Task::Wnli, "sentence1", "sentence2")] {
        let label = task.labels().unwrap()[1];
        let (_d, p) = temp_file("dev.tsv", format!("index\t{a}\t{b}\tlabel\n0\tA\tB\t{label}\n").as_bytes());
        let ex = read_labelled(task, &p).unwrap();
        assert_eq!((ex[0].text_a.as_str(), ex[0].text_b.as_deref(), ex[0].target), ("A", Some("B"), Some(Target::Class(1))));
    }
}

#[test]
fn real_dev_files_read_with_published_counts() {
    let Some(glue) = common::glue_dir() else { return };
    for (task, n) in [(Task::Cola, 1043), (Task::Sst2, 872), (Task::Mrpc, 408), (Task::Stsb, 1500), (Task::Rte, 277), (Task::Wnli, 71), (Task::Qnli, 5463)] {
        let ex = read_labelled(task, &task.task_dir(&glue).join("dev.tsv")).unwrap();
        assert_eq!(ex.len(), n, "{task:?} dev rows");
    }
}

#[test]
fn wrong_column_count_names_file_and_line() {
    let (_d, p) = temp_file("train.tsv", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tentailment\n");
    let e = err_of(read_labelled(Task::Rte, &p));
    assert!(e.contains("train.tsv:3") && e.contains("found 3 columns, expected 4"), "{e}");
}

#[test]
fn unknown_label_names_the_expected_set() {
    let (_d, p) = temp_file("dev.tsv", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tcontradiction\n");
    let e = err_of(read_labelled(Task::Rte, &p));
    assert!(e.contains("dev.tsv:2") && e.contains("unknown label `contradiction`") && e.contains("not_entailment"), "{e}");
    let (_d, p) = temp_file("dev.tsv", b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n0\tg\tf\ty\t0\tn\tn\ta\tb\tfive\n");
    let e = err_of(read_labelled(Task::Stsb, &p));
    assert!(e.contains("dev.tsv:2") && e.contains("`five` is not a finite number"), "{e}");
}

#[test]
fn empty_blank_and_headerless_files_are_refused() {
    let (_d, p) = temp_file("train.tsv", b"");
    assert!(err_of(read_labelled(Task::Rte, &p)).contains("empty file"));
    let (_d, p) = temp_file("train.tsv", b"index\tsentence1\tsentence2\tlabel\n");
    assert!(err_of(read_labelled(Task::Rte, &p)).contains("no data rows"));
    let (_d, p) = temp_file("train.tsv", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n\n1\ta\tb\tentailment\n");
    let e = err_of(read_labelled(Task::Rte, &p));
    assert!(e.contains("train.tsv:3") && e.contains("blank line"), "{e}");
    let (_d, p) = temp_file("train.tsv", b"0\ta\tb\tentailment\n");
    let e = err_of(read_labelled(Task::Rte, &p));
    assert!(e.contains("header has no `sentence1` column"), "{e}");
}

#[test]
fn non_utf8_bytes_name_the_line() {
    let (_d, p) = temp_file("train.tsv", b"sentence\tlabel\ngood\t1\nbad \xff byte\t0\n");
    let e = err_of(read_labelled(Task::Sst2, &p));
    assert!(e.contains("train.tsv:3") && e.contains("invalid UTF-8"), "{e}");
}

#[test]
fn missing_file_is_named() {
    let e = err_of(read_labelled(Task::Rte, std::path::Path::new("/nonexistent/RTE/train.tsv")));
    assert!(e.contains("/nonexistent/RTE/train.tsv"), "{e}");
}
