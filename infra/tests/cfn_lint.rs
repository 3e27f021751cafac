//! `cfn-lint infra/template.yaml` reports no error (warnings and
//! informational findings are printed, not fatal). cfn-lint runs from the
//! Python of `hq_infra::python()`; missing, it is a failure, not a skip.

use std::process::Command;
use std::time::Instant;

#[test]
fn cfn_lint_finds_no_errors() {
    let python = hq_infra::python();
    assert!(
        python.exists(),
        "{} not found: run scripts/test.sh (it creates .venv with cfn-lint), or set HQ_PYTHON",
        python.display()
    );
    let started = Instant::now();
    let out = Command::new(&python)
        // cfnlint has no __main__; this is what its `cfn-lint` script runs.
        .args([
            "-c",
            "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())",
            "--format",
            "parseable",
        ])
        .arg(hq_infra::template_path())
        .output()
        .expect("running cfn-lint");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'cfnlint"),
        "cfn-lint is not installed in {}: `{} -m pip install cfn-lint`",
        python.display(),
        python.display()
    );
    eprintln!("cfn-lint took {:?}\n{stdout}{stderr}", started.elapsed());
    // Parseable format: path:line:col:line:col:RULE:message; E rules are errors.
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split(':')
                .nth(5)
                .is_some_and(|rule| rule.starts_with('E'))
        })
        .collect();
    assert!(errors.is_empty(), "cfn-lint errors:\n{}", errors.join("\n"));
    // Exit code: bit 2 = errors (bits 4/8 = warnings/info), anything else = it broke.
    let code = out.status.code().expect("cfn-lint exit code");
    assert_eq!(
        code & 2,
        0,
        "cfn-lint reported errors (exit {code}):\n{stdout}{stderr}"
    );
    assert!(
        code & !(2 | 4 | 8) == 0,
        "cfn-lint failed to run (exit {code}):\n{stdout}{stderr}"
    );
}
