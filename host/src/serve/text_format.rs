//! Protocol buffers' text format, as TF Serving's `--model_config_file` and
//! `--monitoring_config_file` are written: read into a tree of fields, which the config
//! readers then look fields up in. Only what those files use: nested messages (`name {
//! ... }` or `name: { ... }`, with `<...>` too), and scalars (strings in either quote,
//! with C escapes; numbers; `true`/`false` and enum names). `#` starts a comment; `,` and
//! `;` between fields are allowed.

use std::fmt;

/// A message: its fields in the order written; a repeated field appears once per value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    pub fields: Vec<(String, Value)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string, a number, or an identifier (`true`, an enum name), as written.
    Scalar(Scalar),
    Message(Message),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Str(String),
    /// A number or an identifier, as written.
    Word(String),
}

/// A syntax error with its line and column (1-based).
#[derive(Debug, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl Message {
    /// Every value of field `name`.
    pub fn all<'m>(&'m self, name: &'m str) -> impl Iterator<Item = &'m Value> + 'm {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The names of the fields, each once, in the order first written.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &self.fields {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        names
    }
}

/// Reads the text-format file `path`; an error names the file, and the line and column
/// of a syntax error.
pub fn read_file(path: &std::path::Path) -> crate::error::Result<Message> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::Error::Usage(format!("{}: cannot read: {e}", path.display())))?;
    parse_file_text(path, &text)
}

/// Reads `text`, the contents of `path`; a syntax error names the file, line and column.
pub fn parse_file_text(path: &std::path::Path, text: &str) -> crate::error::Result<Message> {
    parse(text).map_err(|e| {
        crate::error::Error::Usage(format!(
            "{}:{}:{}: {}",
            path.display(),
            e.line,
            e.column,
            e.message
        ))
    })
}

/// Reads a whole text-format message.
pub fn parse(text: &str) -> Result<Message, SyntaxError> {
    let mut reader = Reader {
        chars: text.chars().collect(),
        at: 0,
    };
    let message = reader.message(None)?;
    Ok(message)
}

struct Reader {
    chars: Vec<char>,
    at: usize,
}

impl Reader {
    fn error(&self, message: impl Into<String>) -> SyntaxError {
        let before = &self.chars[..self.at.min(self.chars.len())];
        let line = before.iter().filter(|&&c| c == '\n').count() + 1;
        let column = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
        SyntaxError {
            line,
            column,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        while let Some(&c) = self.chars.get(self.at) {
            if c == '#' {
                while self.chars.get(self.at).is_some_and(|&c| c != '\n') {
                    self.at += 1;
                }
            } else if c.is_whitespace() {
                self.at += 1;
            } else {
                return;
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.at).copied()
    }

    /// Fields until `close` (or the end of the text, for the top level).
    fn message(&mut self, close: Option<char>) -> Result<Message, SyntaxError> {
        let mut message = Message::default();
        loop {
            match (self.peek(), close) {
                (None, None) => return Ok(message),
                (None, Some(c)) => return Err(self.error(format!("expected `{c}`, found the end"))),
                (Some(c), Some(want)) if c == want => {
                    self.at += 1;
                    return Ok(message);
                }
                (Some(',' | ';'), _) => self.at += 1,
                (Some(_), _) => {
                    let name = self.word()?;
                    let value = self.value(&name)?;
                    message.fields.push((name, value));
                }
            }
        }
    }

    fn value(&mut self, name: &str) -> Result<Value, SyntaxError> {
        let colon = self.peek() == Some(':');
        if colon {
            self.at += 1;
        }
        match self.peek() {
            Some('{') => {
                self.at += 1;
                Ok(Value::Message(self.message(Some('}'))?))
            }
            Some('<') => {
                self.at += 1;
                Ok(Value::Message(self.message(Some('>'))?))
            }
            Some(q @ ('"' | '\'')) if colon => Ok(Value::Scalar(Scalar::Str(self.string(q)?))),
            Some(_) if colon => Ok(Value::Scalar(Scalar::Word(self.word()?))),
            _ => Err(self.error(format!("expected `:` or `{{` after `{name}`"))),
        }
    }

    /// A name, a number or an identifier: letters, digits and `_ . - +`.
    fn word(&mut self) -> Result<String, SyntaxError> {
        self.skip_space();
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|&c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+'))
        {
            self.at += 1;
        }
        if self.at == start {
            let found = self
                .chars
                .get(self.at)
                .map_or("the end".into(), |c| format!("`{c}`"));
            return Err(self.error(format!("expected a field name or value, found {found}")));
        }
        Ok(self.chars[start..self.at].iter().collect())
    }

    fn string(&mut self, quote: char) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.chars.get(self.at) else {
                return Err(self.error("a string is not closed"));
            };
            self.at += 1;
            match c {
                c if c == quote => break,
                '\n' => return Err(self.error("a string is not closed on its line")),
                '\\' => {
                    let Some(&e) = self.chars.get(self.at) else {
                        return Err(self.error("a string is not closed"));
                    };
                    self.at += 1;
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        // Adjacent strings join, as in C.
        if matches!(self.peek(), Some('"' | '\'')) {
            let q = self.chars[self.at];
            out.push_str(&self.string(q)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tf_servings_model_config_file() {
        let text = r#"
            # Two models.
            model_config_list {
              config {
                name: 'iris'
                base_path: "/models/iris"
                model_platform: "tensorflow"
                model_version_policy { specific { versions: 1 versions: 2 } }
                version_labels { key: 'stable' value: 1 }
                version_labels: { key: "canary", value: 2 }
              }
              config: < name: "b" base_path: "b" >
            }
        "#;
        let top = parse(text).expect("valid");
        assert_eq!(top.names(), ["model_config_list"]);
        let Some(Value::Message(list)) = top.all("model_config_list").next() else {
            panic!("a message")
        };
        let configs: Vec<&Value> = list.all("config").collect();
        assert_eq!(configs.len(), 2);
        let Value::Message(iris) = configs[0] else {
            panic!("a message")
        };
        assert_eq!(
            iris.all("name").next(),
            Some(&Value::Scalar(Scalar::Str("iris".into())))
        );
        assert_eq!(iris.all("version_labels").count(), 2);
        let Some(Value::Message(policy)) = iris.all("model_version_policy").next() else {
            panic!("a message")
        };
        let Some(Value::Message(specific)) = policy.all("specific").next() else {
            panic!("a message")
        };
        let versions: Vec<&Value> = specific.all("versions").collect();
        assert_eq!(
            versions,
            [
                &Value::Scalar(Scalar::Word("1".into())),
                &Value::Scalar(Scalar::Word("2".into()))
            ]
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = parse("model_config_list {\n  config {\n    name \"x\"\n").expect_err("bad");
        assert_eq!((e.line, e.column), (3, 10));
        assert!(
            e.message.contains("expected `:` or `{` after `name`"),
            "{e}"
        );
        let e = parse("a { b: 1").expect_err("bad");
        assert_eq!(e.message, "expected `}`, found the end");
        let e = parse("a: \"open").expect_err("bad");
        assert_eq!(e.message, "a string is not closed");
    }
}
