//! The bad-input corpus: every `tests/bad_input/*.case` file is one input the runtime must
//! refuse with exit code 2, one `error:` line naming the file (and line/column where there
//! is one) and the cause, no panic, and nothing written to model_dir.
//!
//! A case file is a header of `# args:` (the command line), one or more `# expect:` lines
//! (each must appear in the error line) and optional `# setup:` steps, then the files to
//! create, each after a `--- <name>` line. In all of them `{dir}` is the case's temporary
//! folder and `{data}` the repository's `data/`.

mod common;

use std::path::Path;

use common::{estimator, repo_root};

struct Case {
    name: String,
    args: Vec<String>,
    expect: Vec<String>,
    setup: Vec<String>,
    files: Vec<(String, String)>,
}

fn parse(name: &str, text: &str, dir: &Path) -> Case {
    let fill = |s: &str| {
        s.replace("{dir}", &dir.to_string_lossy())
            .replace("{data}", &repo_root().join("data").to_string_lossy())
    };
    let mut case = Case {
        name: name.to_owned(),
        args: Vec::new(),
        expect: Vec::new(),
        setup: Vec::new(),
        files: Vec::new(),
    };
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(file) = line.strip_prefix("--- ") {
            case.files.extend(current.take());
            current = Some((file.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(&fill(line));
            body.push('\n');
        } else if let Some(args) = line.strip_prefix("# args:") {
            case.args = args.split_whitespace().map(fill).collect();
        } else if let Some(expect) = line.strip_prefix("# expect:") {
            case.expect.push(fill(expect.trim()));
        } else if let Some(step) = line.strip_prefix("# setup:") {
            case.setup.push(step.trim().to_owned());
        }
    }
    case.files.extend(current);
    assert!(!case.args.is_empty(), "{name}: no `# args:` line");
    assert!(!case.expect.is_empty(), "{name}: no `# expect:` line");
    case
}

/// Every path under `dir`, with its size (a folder's is 0).
fn tree(dir: &Path) -> std::collections::BTreeSet<(String, u64)> {
    let mut out = std::collections::BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let size = entry
                .metadata()
                .map_or(0, |m| if m.is_dir() { 0 } else { m.len() });
            if path.is_dir() {
                pending.push(path.clone());
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            out.insert((relative.display().to_string(), size));
        }
    }
    out
}

/// Runs one case; returns why it failed, if it did.
fn run(case: &Case, dir: &Path) -> Result<(), String> {
    for (file, body) in &case.files {
        std::fs::write(dir.join(file), body).map_err(|e| format!("writing {file}: {e}"))?;
    }
    for step in &case.setup {
        match step.split_once(' ') {
            Some(("mkdir", path)) => {
                std::fs::create_dir_all(dir.join(path)).map_err(|e| e.to_string())?
            }
            Some(("touch", path)) => {
                std::fs::write(dir.join(path), "").map_err(|e| e.to_string())?
            }
            _ => return Err(format!("unknown setup step `{step}`")),
        }
    }
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let before = tree(dir);
    let out = estimator(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines.first().copied().unwrap_or_default();
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, not 2", out.status.code()));
    }
    if stderr.contains("panicked") {
        problems.push("a panic reached the user".to_owned());
    }
    if lines.len() != 1 || !line.starts_with("error: ") {
        problems.push(format!("not one `error:` line: {stderr:?}"));
    }
    for expected in &case.expect {
        if !line.contains(expected.as_str()) {
            problems.push(format!("missing `{expected}`"));
        }
    }
    // Nothing is written, removed or changed anywhere in the case's folder: whichever
    // model_dir, output or export folder the case names.
    let after = tree(dir);
    if after != before {
        let changed: Vec<&String> = after
            .symmetric_difference(&before)
            .map(|(path, _)| path)
            .collect();
        problems.push(format!("files were written or removed: {changed:?}"));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{}: {}\n    got: {line}",
            case.name,
            problems.join("; ")
        )),
    }
}

#[test]
fn every_bad_input_is_refused_cleanly() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input");
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .expect("corpus folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".case"))
        .collect();
    names.sort();
    // docs/reliability.md states the corpus's size: keep it true.
    let doc = std::fs::read_to_string(repo_root().join("docs/reliability.md")).expect("doc");
    let stated = format!("every case in `tests/bad_input/`: {}\ncases", names.len());
    assert!(
        doc.contains(&stated),
        "docs/reliability.md must say the corpus has {} cases",
        names.len()
    );
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let dir = tempfile::tempdir().expect("temp dir");
            let text = std::fs::read_to_string(corpus.join(name)).expect("case readable");
            let case = parse(name, &text, dir.path());
            run(&case, dir.path()).err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
