//! Reading `infra/template.yaml` for the checks in `tests/`: the template as a
//! JSON value (it is written in CloudFormation's long form only, so a plain YAML
//! parser reads it), its resources by type, and the tools the checks run.
//!
//! * `tests/template.rs`: consistency by construction — names, key schemas,
//!   topics and environment variables against `aws_adapters` and `hq_lambdas`.
//! * `tests/cfn_lint.rs`: `cfn-lint` passes.
//! * `tests/moto_deploy.rs`: the template deploys into moto's CloudFormation
//!   and yields what `interstella-hq aws bootstrap` creates.

use std::path::PathBuf;

use serde_json::Value;

/// `infra/template.yaml`.
pub fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("template.yaml")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python that has boto3, moto and cfn-lint: `$HQ_PYTHON`, else the
/// repository's `.venv` (what `scripts/test.sh` sets up). Its absence is the
/// caller's failure to report, never a reason to skip.
pub fn python() -> PathBuf {
    match std::env::var_os("HQ_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/python"),
    }
}

/// The parsed template. Panics (a test failure) if it is not valid YAML.
pub fn template() -> Value {
    let text = std::fs::read_to_string(template_path()).expect("reading infra/template.yaml");
    parse(&text)
}

/// Parses a template into JSON. (A short-form tag such as `!Ref` would come
/// out as a `{"!Ref": ...}` map: `tests/template.rs` refuses them by line.)
pub fn parse(text: &str) -> Value {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).expect("infra/template.yaml is YAML");
    serde_json::to_value(&yaml).expect("infra/template.yaml maps to JSON")
}

/// `(logical id, resource)` of every resource of `ty`, in template order.
pub fn resources_of<'a>(template: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .expect("Resources is a map")
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// The resource with logical id `id`.
pub fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    let r = &template["Resources"][id];
    assert!(!r.is_null(), "template has no resource {id}");
    r
}

/// The logical id a `{"Ref": id}` names, if `v` is one.
pub fn ref_of(v: &Value) -> Option<&str> {
    v.get("Ref").and_then(Value::as_str)
}
