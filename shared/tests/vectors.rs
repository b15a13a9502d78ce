//! The shared key and pattern vectors pass.

#[test]
fn every_key_vector_passes() {
    match surge_shared::vectors::check(surge_shared::vectors::KEY_VECTORS_JSON) {
        Ok(count) => assert!(count >= 40, "only {count} vectors; keep at least 40"),
        Err(failures) => panic!("key vectors failed:\n{failures}"),
    }
}

#[test]
fn a_wrong_expectation_is_reported() {
    let json = r#"{"config":{},"cases":[{"name":"x","method":"GET","url":"https://a.example/","key":"surge:v1:GET https://b.example/"}]}"#;
    let err = surge_shared::vectors::check(json).expect_err("mismatch must fail");
    assert!(err.contains("https://a.example/"), "{err}");
    let json = r#"{"config":{},"cases":[],"patterns":[{"name":"p","pattern":"https://*","accepted":true}]}"#;
    let err = surge_shared::vectors::check(json).expect_err("a refused pattern expected to pass");
    assert!(err.contains("https://*"), "{err}");
}
