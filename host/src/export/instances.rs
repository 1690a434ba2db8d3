//! Requests read straight into feature columns, without building a JSON tree: rows
//! (`instances`, and `examples` with their `context`) and columns (`inputs`). A request's
//! values go from the body's bytes into each input's buffer, and input names are found by
//! hashing. This is the serving hot path; the tree-based row reader in `examples` (for an
//! export's warm-up examples) gives the same columns and the same messages.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use estimator_plugin_api::abi::Tensor;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::examples::Column;
use super::signature::{DTypeName, TensorInfo};
use crate::error::Invalid;

/// Each input's position among `inputs`, by name: built once per version.
pub type InputIndex = HashMap<String, usize>;

pub fn input_index(inputs: &BTreeMap<String, TensorInfo>) -> InputIndex {
    inputs
        .keys()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect()
}

/// Columns from the JSON text of an `instances` list; returns them with the number of
/// examples. `index` is [`input_index`] of `inputs`.
pub fn columns_from_instances_json(
    inputs: &BTreeMap<String, TensorInfo>,
    index: &InputIndex,
    json: &str,
) -> Result<(Vec<Tensor>, usize), Invalid> {
    columns_from_examples_json(inputs, index, json, None)
}

/// Columns from the JSON text of a `:classify` or `:regress` request's `examples`, with
/// its `context`: features every example shares, given once. An example's own value of a
/// feature comes first. The context is read once and pushed into each example's column,
/// never copied into the examples.
pub fn columns_from_examples_json(
    inputs: &BTreeMap<String, TensorInfo>,
    index: &InputIndex,
    json: &str,
    context: Option<&str>,
) -> Result<(Vec<Tensor>, usize), Invalid> {
    let context_bytes = context.map_or(0, str::len);
    let context = context.map(|c| read_context(index, c)).transpose()?;
    let mut columns: Vec<Column> = inputs.iter().map(|(n, i)| Column::new(n, i)).collect();
    let rows = read_streamed(json, |de| {
        Instances {
            columns: &mut columns,
            index,
            context: context.as_deref().map(|values| Shared {
                values,
                bytes: context_bytes,
                budget: CONTEXT_GROWTH * (json.len() + context_bytes),
            }),
        }
        .deserialize(de)
    })?;
    Ok((columns.into_iter().map(|c| c.finish(rows)).collect(), rows))
}

/// Columns from the JSON text of the columnar format (`inputs`): each input a list with
/// one value per example, read straight into its column. Returns them with the number of
/// examples.
pub fn columns_from_inputs_json(
    inputs: &BTreeMap<String, TensorInfo>,
    index: &InputIndex,
    json: &str,
) -> Result<(Vec<Tensor>, usize), Invalid> {
    let mut columns: Vec<Column> = inputs.iter().map(|(n, i)| Column::new(n, i)).collect();
    let mut counts: Vec<Option<usize>> = vec![None; columns.len()];
    read_streamed(json, |de| {
        Inputs {
            columns: &mut columns,
            index,
            counts: &mut counts,
        }
        .deserialize(de)
    })?;
    let mut rows: Option<(usize, usize)> = None;
    for (i, count) in counts.iter().enumerate() {
        let name = columns[i].name;
        let n = count.ok_or_else(|| Invalid(format!("inputs has no input `{name}`")))?;
        match rows {
            None => rows = Some((i, n)),
            Some((first, m)) if m != n => {
                return Err(Invalid(format!(
                    "inputs are ragged: `{}` has {m} examples, `{name}` has {n}",
                    columns[first].name
                )))
            }
            Some(_) => {}
        }
    }
    let rows = rows.map_or(0, |(_, n)| n);
    Ok((columns.into_iter().map(|c| c.finish(rows)).collect(), rows))
}

/// Runs `read` on a deserializer of `json` that must hold nothing after the value; the
/// error without serde_json's position (the client's JSON is one line).
fn read_streamed<T>(
    json: &str,
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
    ) -> serde_json::Result<T>,
) -> Result<T, Invalid> {
    let mut de = serde_json::Deserializer::from_str(json);
    read(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| {
            let mut message = e.to_string();
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            Invalid(message)
        })
}

/// A `context`: each input it gives, by position, with its value.
type Context = Vec<(usize, Value)>;

/// A context is copied into every example's columns: it may take at most this many times
/// the request's JSON, so that memory stays in proportion to the body.
const CONTEXT_GROWTH: usize = 4;

fn read_context(index: &InputIndex, json: &str) -> Result<Context, Invalid> {
    let given: serde_json::Map<String, Value> = serde_json::from_str(json)
        .map_err(|_| Invalid("'context' must be an object of named inputs".into()))?;
    given
        .into_iter()
        .map(|(name, value)| match index.get(&name) {
            Some(&i) => Ok((i, value)),
            None => Err(Invalid(format!(
                "context has an input `{name}` the model does not take (it takes: {})",
                known_inputs(index)
            ))),
        })
        .collect()
}

/// The inputs' names, sorted, for messages.
fn known_inputs(index: &InputIndex) -> String {
    let mut known: Vec<&str> = index.keys().map(String::as_str).collect();
    known.sort_unstable();
    known.join(", ")
}

struct Instances<'c, 'a> {
    columns: &'c mut [Column<'a>],
    index: &'c InputIndex,
    context: Option<Shared<'c>>,
}

/// A context as the examples share it: its values, its size as JSON, and how much of it
/// all the examples together may take.
#[derive(Clone, Copy)]
struct Shared<'c> {
    values: &'c [(usize, Value)],
    bytes: usize,
    budget: usize,
}

impl<'de> DeserializeSeed<'de> for Instances<'_, '_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Instances<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'instances' must be a list")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<usize, S::Error> {
        let mut seen = vec![false; self.columns.len()];
        let mut row = 0;
        loop {
            seen.iter_mut().for_each(|s| *s = false);
            let instance = Instance {
                columns: &mut *self.columns,
                index: self.index,
                context: self.context,
                seen: &mut seen,
                row,
            };
            if seq.next_element_seed(instance)?.is_none() {
                return Ok(row);
            }
            row += 1;
        }
    }
}

struct Instance<'c, 'a> {
    columns: &'c mut [Column<'a>],
    index: &'c InputIndex,
    context: Option<Shared<'c>>,
    seen: &'c mut [bool],
    row: usize,
}

impl<'de> DeserializeSeed<'de> for Instance<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Instance<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance {} to be an object of named inputs", self.row)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let row = self.row;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(&i) = self.index.get(key.as_ref()) else {
                return Err(de::Error::custom(format!(
                    "instance {row} has an input `{key}` the model does not take (it takes: {})",
                    known_inputs(self.index)
                )));
            };
            // A second value would make this column longer than the others: refused
            // here, so that it can never reach a batch shared with other requests.
            if self.seen[i] {
                return Err(de::Error::custom(format!(
                    "instance {row} names input `{key}` twice"
                )));
            }
            self.seen[i] = true;
            let column = &mut self.columns[i];
            if column.info.shape.is_empty() {
                map.next_value_seed(Scalar {
                    column,
                    at: At::Instance(row),
                })?;
            } else {
                let value: Value = map.next_value()?;
                let at = format!("instance {row}");
                column
                    .push(&value, &at)
                    .map_err(|e| de::Error::custom(e.0))?;
            }
        }
        if let Some(shared) = self.context {
            if (row + 1).saturating_mul(shared.bytes) > shared.budget {
                return Err(de::Error::custom(format!(
                    "the context ({} bytes) copied into {} examples would take over {} bytes, \
                     {CONTEXT_GROWTH} times the request: give large features in each example",
                    shared.bytes,
                    row + 1,
                    shared.budget
                )));
            }
        }
        for (i, value) in self.context.map_or(&[][..], |c| c.values) {
            if !self.seen[*i] {
                self.seen[*i] = true;
                let at = format!("context (instance {row})");
                self.columns[*i]
                    .push(value, &at)
                    .map_err(|e| de::Error::custom(e.0))?;
            }
        }
        if let Some(missing) = self.seen.iter().position(|s| !s) {
            return Err(de::Error::custom(format!(
                "instance {row} has no input `{}`",
                self.columns[missing].name
            )));
        }
        Ok(())
    }
}

/// The columnar format: an object of inputs, each a list with one value per example.
struct Inputs<'c, 'a> {
    columns: &'c mut [Column<'a>],
    index: &'c InputIndex,
    /// How many examples each input gave; `None` for an input not seen yet.
    counts: &'c mut [Option<usize>],
}

impl<'de> DeserializeSeed<'de> for Inputs<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Inputs<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'inputs' to be an object of named inputs")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(&i) = self.index.get(key.as_ref()) else {
                return Err(de::Error::custom(format!(
                    "inputs has an input `{key}` the model does not take (it takes: {})",
                    known_inputs(self.index)
                )));
            };
            if self.counts[i].is_some() {
                return Err(de::Error::custom(format!(
                    "inputs names input `{key}` twice"
                )));
            }
            let column = &mut self.columns[i];
            let examples = map.next_value_seed(ColumnValues { column })?;
            self.counts[i] = Some(examples);
        }
        Ok(())
    }
}

/// One input's list in the columnar format, pushed into its column value by value.
struct ColumnValues<'c, 'a> {
    column: &'c mut Column<'a>,
}

impl<'de> DeserializeSeed<'de> for ColumnValues<'_, '_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ColumnValues<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input `{}` to be a list with one value per example",
            self.column.name
        )
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<usize, S::Error> {
        let mut row = 0;
        loop {
            let more = if self.column.info.shape.is_empty() {
                seq.next_element_seed(Scalar {
                    column: &mut *self.column,
                    at: At::Example(row),
                })?
            } else {
                match seq.next_element::<Value>()? {
                    Some(value) => {
                        let at = At::Example(row).to_string();
                        self.column
                            .push(&value, &at)
                            .map_err(|e| de::Error::custom(e.0))?;
                        Some(())
                    }
                    None => None,
                }
            };
            if more.is_none() {
                return Ok(row);
            }
            row += 1;
        }
    }
}

/// One scalar input's value, pushed into its column as it is read.
struct Scalar<'c, 'a> {
    column: &'c mut Column<'a>,
    at: At,
}

/// Where a value is, "instance <row>" or "example <row>", written only when an error
/// needs it.
#[derive(Clone, Copy)]
enum At {
    Instance(usize),
    Example(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Instance(row) => write!(f, "instance {row}"),
            At::Example(row) => write!(f, "example {row}"),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Scalar<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Scalar<'_, '_> {
    fn wrong<E: de::Error>(&self, got: &dyn fmt::Display) -> E {
        let wanted = match self.column.info.dtype {
            DTypeName::Float32 => "numbers",
            DTypeName::Int64 => "integers",
            DTypeName::String => "strings",
        };
        E::custom(format!(
            "{}: input `{}` must hold {wanted}, not {got}",
            self.at, self.column.name
        ))
    }

    fn shape<E: de::Error>(&self) -> E {
        E::custom(format!(
            "{}: input `{}` must have shape [] per example",
            self.at, self.column.name
        ))
    }
}

impl<'de> Visitor<'de> for Scalar<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value for input `{}`", self.column.name)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.column
            .push_leaf(&Value::from(v), self.at)
            .map_err(|e| E::custom(e.0))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.column
            .push_leaf(&Value::from(v), self.at)
            .map_err(|e| E::custom(e.0))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.column
            .push_leaf(&Value::from(v), self.at)
            .map_err(|e| E::custom(e.0))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.column.info.dtype {
            DTypeName::String => self
                .column
                .push_leaf(&Value::from(v), self.at)
                .map_err(|e| E::custom(e.0)),
            _ => Err(self.wrong(&Value::from(v))),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.wrong(&v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.wrong(&"null"))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, _: S) -> Result<(), S::Error> {
        Err(self.shape())
    }

    fn visit_map<M: MapAccess<'de>>(self, _: M) -> Result<(), M::Error> {
        Err(self.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::examples::columns_from_instances;

    fn inputs() -> BTreeMap<String, TensorInfo> {
        let t = |dtype, shape: &[usize]| TensorInfo {
            dtype,
            shape: shape.to_vec(),
        };
        BTreeMap::from([
            ("a".to_owned(), t(DTypeName::Float32, &[])),
            ("b".to_owned(), t(DTypeName::Int64, &[2])),
            ("c".to_owned(), t(DTypeName::String, &[])),
        ])
    }

    #[test]
    fn streamed_columns_equal_those_read_from_a_tree() {
        let json = r#"[{"a": 1.5, "b": [1, 2], "c": "x"}, {"c": "y", "a": 2, "b": [3, 4]}]"#;
        let (streamed, rows) =
            columns_from_instances_json(&inputs(), &input_index(&inputs()), json).expect("valid");
        let tree: Vec<Value> = serde_json::from_str(json).expect("JSON");
        assert_eq!(rows, 2);
        assert_eq!(
            streamed,
            columns_from_instances(&inputs(), &tree).expect("valid")
        );
    }

    #[test]
    fn streamed_errors_say_what_the_tree_reader_says() {
        let cases = [
            r#"[{"a": 1, "b": [1, 2]}]"#,
            r#"[{"a": "x", "b": [1, 2], "c": "x"}]"#,
            r#"[{"a": [1], "b": [1, 2], "c": "x"}]"#,
            r#"[{"a": 1, "b": [1], "c": "x"}]"#,
            r#"[{"a": 1, "b": [1, 2], "c": "x", "d": 1}]"#,
        ];
        for json in cases {
            let streamed = columns_from_instances_json(&inputs(), &input_index(&inputs()), json)
                .expect_err("refused");
            let tree: Vec<Value> = serde_json::from_str(json).expect("JSON");
            let read = columns_from_instances(&inputs(), &tree).expect_err("refused");
            assert_eq!(streamed.0, read.0, "{json}");
        }
    }

    #[test]
    fn columns_equal_the_same_examples_as_rows_and_refuse_a_name_given_twice() {
        let json = r#"{"c": ["x", "y"], "a": [1.5, 2], "b": [[1, 2], [3, 4]]}"#;
        let (streamed, rows) =
            columns_from_inputs_json(&inputs(), &input_index(&inputs()), json).expect("valid");
        let tree: Vec<Value> = serde_json::from_str(
            r#"[{"a": 1.5, "b": [1, 2], "c": "x"}, {"a": 2, "b": [3, 4], "c": "y"}]"#,
        )
        .expect("JSON");
        let read = columns_from_instances(&inputs(), &tree).expect("valid");
        assert_eq!((streamed, rows), (read, 2));
        let ragged = r#"{"a": [1, 2], "b": [[1, 2]], "c": ["x", "y"]}"#;
        let e = columns_from_inputs_json(&inputs(), &input_index(&inputs()), ragged)
            .expect_err("ragged");
        assert_eq!(e.0, "inputs are ragged: `a` has 2 examples, `b` has 1");
        let twice = r#"{"a": [1], "a": [2], "b": [[1, 2]], "c": ["x"]}"#;
        let e =
            columns_from_inputs_json(&inputs(), &input_index(&inputs()), twice).expect_err("twice");
        assert_eq!(e.0, "inputs names input `a` twice");
    }

    #[test]
    fn a_context_fills_what_each_example_leaves_out_within_its_budget() {
        let index = input_index(&inputs());
        let examples = r#"[{"a": 1}, {"a": 2, "c": "own"}]"#;
        let (columns, rows) = columns_from_examples_json(
            &inputs(),
            &index,
            examples,
            Some(r#"{"b": [7, 8], "c": "shared"}"#),
        )
        .expect("valid");
        let tree: Vec<Value> = serde_json::from_str(
            r#"[{"a": 1, "b": [7, 8], "c": "shared"}, {"a": 2, "b": [7, 8], "c": "own"}]"#,
        )
        .expect("JSON");
        assert_eq!(rows, 2);
        assert_eq!(
            columns,
            columns_from_instances(&inputs(), &tree).expect("valid")
        );
        // A large context over many small examples would grow far past the request.
        let big = format!(r#"{{"c": "{}", "b": [1, 2]}}"#, "x".repeat(1000));
        let many = format!("[{}]", vec![r#"{"a": 1}"#; 100].join(","));
        let e = columns_from_examples_json(&inputs(), &index, &many, Some(&big))
            .expect_err("over budget");
        assert!(
            e.0.starts_with("the context (1022 bytes) copied into"),
            "{}",
            e.0
        );
    }
}
