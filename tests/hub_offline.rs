//! A hub id that is not cached, with downloads switched off, fails with a message saying how to
//! fetch it. (Own test binary: it sets process-wide environment variables.)
#[test]
fn uncached_model_offline_says_how_to_fetch() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let e = finetune::model::hub::resolve("some-org/no-such-model").unwrap_err().to_string();
    assert!(e.contains("some-org/no-such-model") && e.contains("finetune fetch --model some-org/no-such-model"), "{e}");
    assert!(e.contains("HF_HUB_OFFLINE"), "{e}");
    let e = finetune::model::hub::resolve("/no/such/dir").unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
}
