//! The row format (`instances`) read straight into feature columns, without building a
//! JSON tree: a request's values go from the body's bytes into each input's buffer, and
//! input names are found by hashing. This is the serving hot path; the tree-based readers
//! in `examples` give the same columns and the same messages.

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
    let mut columns: Vec<Column> = inputs.iter().map(|(n, i)| Column::new(n, i)).collect();
    let mut de = serde_json::Deserializer::from_str(json);
    let rows = Instances {
        columns: &mut columns,
        index,
    }
    .deserialize(&mut de)
    .and_then(|rows| de.end().map(|()| rows))
    .map_err(|e| {
        let mut message = e.to_string();
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        Invalid(message)
    })?;
    Ok((columns.into_iter().map(|c| c.finish(rows)).collect(), rows))
}

struct Instances<'c, 'a> {
    columns: &'c mut [Column<'a>],
    index: &'c InputIndex,
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
                let mut known: Vec<&str> = self.index.keys().map(String::as_str).collect();
                known.sort_unstable();
                return Err(de::Error::custom(format!(
                    "instance {row} has an input `{key}` the model does not take (it takes: {})",
                    known.join(", ")
                )));
            };
            self.seen[i] = true;
            let column = &mut self.columns[i];
            if column.info.shape.is_empty() {
                map.next_value_seed(Scalar { column, row })?;
            } else {
                let value: Value = map.next_value()?;
                let at = format!("instance {row}");
                column
                    .push(&value, &at)
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

/// One scalar input's value, pushed into its column as it is read.
struct Scalar<'c, 'a> {
    column: &'c mut Column<'a>,
    row: usize,
}

/// "instance <row>", written only when an error needs it.
struct At(usize);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance {}", self.0)
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
            At(self.row),
            self.column.name
        ))
    }

    fn shape<E: de::Error>(&self) -> E {
        E::custom(format!(
            "{}: input `{}` must have shape [] per example",
            At(self.row),
            self.column.name
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
            .push_leaf(&Value::from(v), At(self.row))
            .map_err(|e| E::custom(e.0))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.column
            .push_leaf(&Value::from(v), At(self.row))
            .map_err(|e| E::custom(e.0))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.column
            .push_leaf(&Value::from(v), At(self.row))
            .map_err(|e| E::custom(e.0))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.column.info.dtype {
            DTypeName::String => self
                .column
                .push_leaf(&Value::from(v), At(self.row))
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
}
