//! serde_yaml's errors as one line `file:line:column: message`.

use std::path::Path;

use crate::error::Error;

/// serde_yaml's message with its position moved to the front as `file:line:column`.
pub(super) fn yaml_error(path: &Path, text: &str, e: &serde_yaml::Error) -> Error {
    let mut message = e.to_string();
    match e.location() {
        Some(loc) => {
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            // libyaml's word for a tab is "a character that cannot start any token".
            let line = text.lines().nth(loc.line().saturating_sub(1)).unwrap_or("");
            if line.chars().nth(loc.column().saturating_sub(1)) == Some('\t') {
                message.push_str(" (a tab: YAML indents with spaces only)");
            }
            let (line, column) = match (loc.line(), loc.column()) {
                (1, 1) => top_level_key_line(text, &message).unwrap_or((1, 1)),
                other => other,
            };
            Error::Manifest(format!("{}:{line}:{column}: {message}", path.display()))
        }
        None => Error::Manifest(format!("{}: {message}", path.display())),
    }
}

/// Where the top-level key a message starts with (`optimizer: …`) is written. serde
/// places errors from values it had to buffer at 1:1; the key's line is more use.
fn top_level_key_line(text: &str, message: &str) -> Option<(usize, usize)> {
    let (key, _) = message.split_once(": ")?;
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let index = text.lines().position(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })?;
    Some((index + 1, 1))
}
