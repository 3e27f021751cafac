//! Bodies an attendee's fulfiller might send wrongly, each with the error code
//! HQ must name, in every mode. Shared by the all-in-one tests and the Lambda
//! tests (which include this file by path), so both modes face one table.

pub const BAD_BODIES: &[(&str, &str)] = &[
    ("", "empty_body"),
    ("{", "malformed_json"),
    ("not json at all", "malformed_json"),
    (r#"{"iridium": 1} trailing"#, "malformed_json"),
    ("[]", "not_an_object"),
    ("\"iridium\"", "not_an_object"),
    ("null", "not_an_object"),
    ("7", "not_an_object"),
    ("{}", "nothing_fulfilled"),
    (r#"{"gold": 1}"#, "unknown_resource"),
    (r#"{"iridium": 1, "bundle": 1}"#, "unknown_resource"),
    (r#"{"iridium": -1}"#, "invalid_amount"),
    (r#"{"iridium": 0.5}"#, "invalid_amount"),
    (r#"{"iridium": "1.5"}"#, "invalid_amount"),
    (r#"{"iridium": "one"}"#, "invalid_amount"),
    (r#"{"iridium": true}"#, "invalid_amount"),
    (r#"{"iridium": null}"#, "invalid_amount"),
    (r#"{"iridium": [1]}"#, "invalid_amount"),
    (r#"{"iridium": 1e400}"#, "malformed_json"),
    (
        r#"{"iridium": 123456789012345678901234567890}"#,
        "invalid_amount",
    ),
    (r#"{"iridium": 1001}"#, "amount_too_large"),
    (r#"{"magnesite": "1000000"}"#, "amount_too_large"),
    (r#"{"iridium": 0, "magnesite": 0}"#, "nothing_fulfilled"),
    (r#"{"iridium": 1, "iridium": 1}"#, "duplicate_resource"),
];
