//! CSV input: a header row, one label column, numeric feature columns.
//!
//! ```yaml
//! input:
//!   train: { plugin: csv, params: { path: data/iris_training.csv, label: Species } }
//! ```

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use estimator_plugin_api::abi::{
    Chunk, FactoryContext, ModeKeys, NamedTensor, PluginError, Tensor,
};
use estimator_plugin_api::sdk::Input;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvParams {
    /// The file, relative to the manifest's folder.
    pub path: String,
    /// The label column; optional in PREDICT, where it is dropped if present.
    pub label: Option<String>,
    #[serde(default)]
    pub label_dtype: LabelDType,
    /// Rows per chunk handed to the host.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
    /// Values for empty numeric cells, by column (TF's `column_defaults`); without one,
    /// an empty cell is an error.
    #[serde(default)]
    pub defaults: std::collections::BTreeMap<String, f32>,
    /// Columns read as strings rather than numbers (for categorical feature columns).
    #[serde(default)]
    pub string_columns: Vec<String>,
}

fn default_chunk_rows() -> usize {
    4096
}

/// The label's type: class ids (`int64`, the default), real values (`float32`) or class
/// names (`string`, for a model's `label_vocabulary`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelDType {
    #[default]
    Int64,
    Float32,
    String,
}

/// How one feature column is read.
#[derive(Debug, Clone, PartialEq)]
enum ColumnKind {
    /// A number; the default fills empty cells.
    Number(Option<f32>),
    Text,
}

/// One chunk's values of one feature column.
enum Values {
    Numbers(Vec<f32>),
    Texts(Vec<String>),
}

pub struct CsvInput {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    features: Vec<(usize, String, ColumnKind)>,
    label: Option<(usize, LabelDType)>,
    width: usize,
    chunk_rows: usize,
    record: csv::StringRecord,
}

impl Input for CsvInput {
    type Params = CsvParams;

    fn open(
        params: CsvParams,
        ctx: &FactoryContext<'_>,
        mode: ModeKeys,
    ) -> Result<Self, PluginError> {
        let path = ctx.resolve(&params.path);
        let file = File::open(&path)
            .map_err(|e| PluginError::bad_data(format!("{}: cannot open: {e}", path.display())))?;
        CsvInput::from_reader(Box::new(file), path, params, mode)
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, PluginError> {
        self.read_chunk()
    }
}

impl CsvInput {
    /// Reads CSV text from `source`; `path` names it in errors.
    pub fn from_reader(
        source: Box<dyn Read + Send>,
        path: PathBuf,
        params: CsvParams,
        mode: ModeKeys,
    ) -> Result<Self, PluginError> {
        if params.chunk_rows == 0 {
            return Err(PluginError::bad_params("chunk_rows must be > 0"));
        }
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(source);
        let header = reader
            .headers()
            .map_err(|e| PluginError::bad_data(format!("{}: {e}", path.display())))?
            .clone();
        if header.is_empty() || header.iter().all(str::is_empty) {
            return Err(PluginError::bad_data(format!(
                "{}: empty file, no header row",
                path.display()
            )));
        }
        let label = match (&params.label, mode) {
            (None, ModeKeys::Predict) => None,
            (None, _) => {
                return Err(PluginError::bad_params(format!(
                    "`label` is required in mode {mode} (the column holding the labels)"
                )))
            }
            (Some(name), _) => match header.iter().position(|h| h == name) {
                Some(index) => Some((index, params.label_dtype)),
                None if mode == ModeKeys::Predict => None,
                None => {
                    return Err(PluginError::bad_data(format!(
                        "{}:1: label column `{name}` is not in the header ({})",
                        path.display(),
                        header.iter().collect::<Vec<_>>().join(", ")
                    )))
                }
            },
        };
        let label_name = params.label.as_deref();
        let known = |name: &String| header.iter().any(|h| h == name && Some(h) != label_name);
        let named = params.defaults.keys().chain(&params.string_columns);
        if let Some(unknown) = named.into_iter().find(|n| !known(n)) {
            return Err(PluginError::bad_params(format!(
                "`{unknown}` (in defaults or string_columns) is not a feature column of {}",
                path.display()
            )));
        }
        if let Some((name, v)) = params.defaults.iter().find(|(_, v)| !v.is_finite()) {
            return Err(PluginError::bad_params(format!(
                "the default for `{name}` must be a finite number, got {v}"
            )));
        }
        let features = header
            .iter()
            .enumerate()
            .filter(|(_, name)| Some(*name) != label_name)
            .map(|(i, name)| {
                let kind = match params.string_columns.iter().any(|s| s == name) {
                    true => ColumnKind::Text,
                    false => ColumnKind::Number(params.defaults.get(name).copied()),
                };
                (i, name.to_owned(), kind)
            })
            .collect();
        Ok(CsvInput {
            path,
            reader,
            features,
            label,
            width: header.len(),
            chunk_rows: params.chunk_rows,
            record: csv::StringRecord::new(),
        })
    }

    /// The next chunk of up to `chunk_rows` rows, or `None` at the end of the file.
    pub fn read_chunk(&mut self) -> Result<Option<Chunk>, PluginError> {
        let mut columns: Vec<Values> = self
            .features
            .iter()
            .map(|(_, _, kind)| match kind {
                ColumnKind::Text => Values::Texts(Vec::new()),
                ColumnKind::Number(_) => Values::Numbers(Vec::new()),
            })
            .collect();
        let mut labels = Labels::new(self.label.map(|(_, dtype)| dtype));
        let mut rows = 0;
        while rows < self.chunk_rows {
            let more = self
                .reader
                .read_record(&mut self.record)
                .map_err(|e| PluginError::bad_data(format!("{}: {e}", self.path.display())))?;
            if !more {
                break;
            }
            self.read_row(&mut columns, &mut labels)?;
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let features = self
            .features
            .iter()
            .zip(columns)
            .map(|((_, name, _), values)| {
                let tensor = match values {
                    Values::Numbers(v) => Tensor::f32(vec![rows], v),
                    Values::Texts(v) => Tensor::strings(vec![rows], v),
                };
                NamedTensor::new(name.clone(), tensor)
            })
            .collect();
        Ok(Some(Chunk::new(features, labels.into_tensor(rows))))
    }

    fn read_row(&self, columns: &mut [Values], labels: &mut Labels) -> Result<(), PluginError> {
        let line = self.record.position().map_or(0, |p| p.line());
        let at = || format!("{}:{line}", self.path.display());
        if self.record.len() != self.width {
            return Err(PluginError::bad_data(format!(
                "{}: expected {} fields, found {}",
                at(),
                self.width,
                self.record.len()
            )));
        }
        for ((index, name, kind), column) in self.features.iter().zip(columns.iter_mut()) {
            let cell = self.record[*index].trim();
            match (column, kind) {
                (Values::Texts(texts), _) => texts.push(cell.into()),
                (Values::Numbers(numbers), ColumnKind::Number(default)) => {
                    // NaN and infinities parse as f32 but would only surface later as a
                    // NaN loss.
                    let value = match (cell, default) {
                        ("", Some(d)) => Some(*d),
                        _ => cell.parse::<f32>().ok().filter(|v| v.is_finite()),
                    };
                    numbers.push(value.ok_or_else(|| {
                        PluginError::bad_data(format!(
                            "{}: column `{name}`: `{cell}` is not a finite number",
                            at()
                        ))
                    })?);
                }
                (Values::Numbers(_), ColumnKind::Text) => {}
            }
        }
        if let Some((index, _)) = self.label {
            labels.push(self.record[index].trim()).map_err(|why| {
                PluginError::bad_data(format!(
                    "{}: label `{}`: {why}",
                    at(),
                    self.record[index].trim()
                ))
            })?;
        }
        Ok(())
    }
}

enum Labels {
    None,
    Int(Vec<i64>),
    Float(Vec<f32>),
    Text(Vec<String>),
}

impl Labels {
    fn new(dtype: Option<LabelDType>) -> Self {
        match dtype {
            None => Labels::None,
            Some(LabelDType::Int64) => Labels::Int(Vec::new()),
            Some(LabelDType::Float32) => Labels::Float(Vec::new()),
            Some(LabelDType::String) => Labels::Text(Vec::new()),
        }
    }

    fn push(&mut self, cell: &str) -> Result<(), &'static str> {
        match self {
            Labels::None => Ok(()),
            Labels::Int(v) => {
                v.push(cell.parse().map_err(|_| {
                    "not an integer class id (label_dtype is int64; \
                             `label_dtype: string` reads class names)"
                })?);
                Ok(())
            }
            Labels::Float(v) => {
                v.push(cell.parse().map_err(|_| "not a number")?);
                Ok(())
            }
            Labels::Text(v) => {
                v.push(cell.into());
                Ok(())
            }
        }
    }

    fn into_tensor(self, rows: usize) -> Option<Tensor> {
        match self {
            Labels::None => None,
            Labels::Int(v) => Some(Tensor::i64(vec![rows], v)),
            Labels::Float(v) => Some(Tensor::f32(vec![rows], v)),
            Labels::Text(v) => Some(Tensor::strings(vec![rows], v)),
        }
    }
}

estimator_plugin_api::export_plugin! {
    models: [],
    metrics: [],
    inputs: ["csv" => CsvInput],
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::TensorBuf;
    use std::io::Write;

    fn open(
        text: &str,
        mode: ModeKeys,
        chunk_rows: usize,
    ) -> (tempfile::TempDir, Result<CsvInput, PluginError>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut f = File::create(dir.path().join("d.csv")).expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        let base = dir.path().to_string_lossy().into_owned();
        let ctx = FactoryContext {
            base_dir: base.as_str().into(),
            seed: 0,
        };
        let params = CsvParams {
            path: "d.csv".into(),
            label: Some("y".into()),
            label_dtype: LabelDType::Int64,
            chunk_rows,
            defaults: Default::default(),
            string_columns: Vec::new(),
        };
        let input = CsvInput::open(params, &ctx, mode);
        (dir, input)
    }

    #[test]
    fn reads_features_and_labels_in_chunks() {
        let (_dir, input) = open("a,b,y\n1,2,0\n3,4,1\n5,6,2\n", ModeKeys::Train, 2);
        let mut input = input.expect("valid file");
        let first = input.next_chunk().expect("valid rows").expect("a chunk");
        assert_eq!(first.features.len(), 2);
        assert_eq!(
            first.features[1].tensor,
            Tensor::f32(vec![2], vec![2.0, 4.0])
        );
        assert_eq!(
            first.labels.into_option().map(|t| t.data),
            Some(TensorBuf::I64(vec![0, 1].into()))
        );
        let second = input.next_chunk().expect("valid rows").expect("a chunk");
        assert_eq!(second.features[0].tensor, Tensor::f32(vec![1], vec![5.0]));
        assert!(input.next_chunk().expect("end").is_none());
    }

    #[test]
    fn bad_cell_names_file_line_and_column() {
        let (_dir, input) = open("a,b,y\n1,2,0\n3,x,1\n", ModeKeys::Train, 10);
        let err = input.expect("valid header").next_chunk().unwrap_err();
        assert!(
            err.message
                .ends_with("d.csv:3: column `b`: `x` is not a finite number"),
            "{err}"
        );
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        let (_dir, input) = open("a,b,y\n1,2,0\n3,1\n", ModeKeys::Train, 10);
        let err = input.expect("valid header").next_chunk().unwrap_err();
        assert!(
            err.message.ends_with("d.csv:3: expected 3 fields, found 2"),
            "{err}"
        );
    }

    #[test]
    fn missing_label_column_is_an_error_outside_predict() {
        let (_dir, input) = open("a,b\n1,2\n", ModeKeys::Eval, 10);
        assert!(input
            .err()
            .expect("refused")
            .message
            .contains("label column `y` is not in the header"));
        let (_dir, input) = open("a,b\n1,2\n", ModeKeys::Predict, 10);
        assert!(input.is_ok());
    }

    #[test]
    fn empty_file_is_an_error() {
        let (_dir, input) = open("", ModeKeys::Train, 10);
        assert!(input
            .err()
            .expect("refused")
            .message
            .ends_with("d.csv: empty file, no header row"));
    }

    fn open_with(
        text: &str,
        defaults: &[(&str, f32)],
        string_columns: &[&str],
    ) -> Result<CsvInput, PluginError> {
        let source = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        let params = CsvParams {
            path: "d.csv".into(),
            label: Some("y".into()),
            label_dtype: LabelDType::Int64,
            chunk_rows: 10,
            defaults: defaults.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            string_columns: string_columns.iter().map(|c| c.to_string()).collect(),
        };
        CsvInput::from_reader(source, PathBuf::from("d.csv"), params, ModeKeys::Train)
    }

    #[test]
    fn defaults_fill_empty_cells_and_string_columns_stay_text() {
        let mut input =
            open_with("a,b,y\n1,red,0\n,blue,1\n", &[("a", -1.0)], &["b"]).expect("valid params");
        let chunk = input.read_chunk().expect("valid rows").expect("a chunk");
        assert_eq!(
            chunk.features[0].tensor,
            Tensor::f32(vec![2], vec![1.0, -1.0])
        );
        let TensorBuf::Str(colours) = &chunk.features[1].tensor.data else {
            panic!("strings")
        };
        let colours: Vec<&str> = colours.iter().map(|c| c.as_str()).collect();
        assert_eq!(colours, ["red", "blue"]);
        // Without a default an empty cell is still an error naming file and line.
        let mut input = open_with("a,b,y\n,red,0\n", &[], &["b"]).expect("valid params");
        let err = input.read_chunk().unwrap_err();
        assert!(
            err.message
                .ends_with("d.csv:2: column `a`: `` is not a finite number"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_string_columns_must_name_feature_columns() {
        let err = open_with("a,y\n1,0\n", &[("z", 0.0)], &[])
            .err()
            .expect("refused");
        assert!(
            err.message
                .contains("`z` (in defaults or string_columns) is not a feature column"),
            "{err}"
        );
        let err = open_with("a,y\n1,0\n", &[], &["y"]).err().expect("refused");
        assert!(
            err.message.contains("`y`"),
            "the label is not a feature column: {err}"
        );
        let err = open_with("a,y\n1,0\n", &[("a", f32::NAN)], &[])
            .err()
            .expect("refused");
        assert!(err.message.contains("must be a finite number"), "{err}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Reads every chunk; any error must name the file.
        fn read_all(text: &str) -> Result<usize, TestCaseError> {
            let (_dir, input) = open(text, ModeKeys::Train, 3);
            let mut input = match input {
                Ok(input) => input,
                Err(e) => {
                    prop_assert!(e.message.contains("d.csv"), "{e}");
                    return Ok(0);
                }
            };
            let mut rows = 0;
            loop {
                match input.next_chunk() {
                    Ok(Some(chunk)) => {
                        let n = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
                        for f in chunk.features.iter() {
                            prop_assert_eq!(f.tensor.batch_len(), n);
                            let TensorBuf::F32(values) = &f.tensor.data else {
                                return Err(TestCaseError::fail("features are f32"));
                            };
                            prop_assert!(values.iter().all(|v| v.is_finite()));
                        }
                        rows += n;
                    }
                    Ok(None) => return Ok(rows),
                    Err(e) => {
                        prop_assert!(e.message.contains("d.csv:"), "{e}");
                        return Ok(rows);
                    }
                }
            }
        }

        /// How one row of a valid file is damaged.
        #[derive(Clone, Copy, Debug)]
        enum Damage {
            DropField,
            ExtraField,
            NotANumber,
            NotFinite,
            EmptyCell,
            FractionalLabel,
        }

        /// A valid file: distinct feature names with the label `y` among them at `label_at`,
        /// and rows of finite values with class ids.
        #[derive(Clone, Debug)]
        struct ValidFile {
            names: Vec<String>,
            label_at: usize,
            rows: Vec<(Vec<f32>, i64)>,
        }

        fn valid_file() -> impl Strategy<Value = ValidFile> {
            proptest::collection::btree_set("[A-Za-z][A-Za-z0-9_.]{0,8}", 1..5)
                .prop_filter("the label's name", |names| !names.contains("y"))
                .prop_flat_map(|names| {
                    let names: Vec<String> = names.into_iter().collect();
                    let n = names.len();
                    let row = (
                        proptest::collection::vec(
                            prop_oneof![
                                any::<f32>().prop_filter("finite", |v| v.is_finite()),
                                -1e3f32..1e3
                            ],
                            n,
                        ),
                        0i64..3,
                    );
                    (Just(names), 0..=n, proptest::collection::vec(row, 1..12))
                })
                .prop_map(|(names, label_at, rows)| ValidFile {
                    names,
                    label_at,
                    rows,
                })
        }

        impl ValidFile {
            /// The file's lines; `damage` spoils row `at`'s line.
            fn text(&self, damage: Option<(usize, Damage)>) -> String {
                let mut header = self.names.clone();
                header.insert(self.label_at, "y".into());
                let mut lines = vec![header.join(",")];
                for (r, (values, label)) in self.rows.iter().enumerate() {
                    let mut cells: Vec<String> = values.iter().map(f32::to_string).collect();
                    cells.insert(self.label_at, label.to_string());
                    let feature = usize::from(self.label_at == 0);
                    match damage.filter(|(at, _)| *at == r).map(|(_, d)| d) {
                        None => {}
                        Some(Damage::DropField) => drop(cells.pop()),
                        Some(Damage::ExtraField) => cells.push("1".into()),
                        Some(Damage::NotANumber) => cells[feature] = "x1".into(),
                        Some(Damage::NotFinite) => cells[feature] = "inf".into(),
                        Some(Damage::EmptyCell) => cells[feature] = String::new(),
                        Some(Damage::FractionalLabel) => cells[self.label_at] = "0.5".into(),
                    }
                    lines.push(cells.join(","));
                }
                lines.join("\n") + "\n"
            }
        }

        fn damage() -> impl Strategy<Value = Damage> {
            prop_oneof![
                Just(Damage::DropField),
                Just(Damage::ExtraField),
                Just(Damage::NotANumber),
                Just(Damage::NotFinite),
                Just(Damage::EmptyCell),
                Just(Damage::FractionalLabel),
            ]
        }

        /// Reads chunks of 3 rows until the end or an error: the feature values and labels
        /// read, and the error.
        fn read_rows(text: &str) -> (Vec<(Vec<f32>, i64)>, Option<PluginError>) {
            let (_dir, input) = open(text, ModeKeys::Train, 3);
            let mut input = input.expect("a valid header opens");
            let mut rows = Vec::new();
            loop {
                match input.next_chunk() {
                    Ok(Some(chunk)) => {
                        let n = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
                        let labels = chunk
                            .labels()
                            .and_then(Tensor::as_i64)
                            .expect("int64 labels")
                            .to_vec();
                        for r in 0..n {
                            let values = chunk
                                .features
                                .iter()
                                .map(|f| match &f.tensor.data {
                                    TensorBuf::F32(v) => v[r],
                                    _ => panic!("f32 features"),
                                })
                                .collect();
                            rows.push((values, labels[r]));
                        }
                    }
                    Ok(None) => return (rows, None),
                    Err(e) => return (rows, Some(e)),
                }
            }
        }

        proptest! {
            #[test]
            fn a_valid_file_reads_back_every_value_exactly(file in valid_file()) {
                let (rows, error) = read_rows(&file.text(None));
                prop_assert!(error.is_none(), "{error:?}");
                prop_assert_eq!(rows, file.rows);
            }

            #[test]
            fn a_damaged_row_is_refused_naming_file_and_line_after_the_chunks_before_it(
                file in valid_file(),
                at in any::<prop::sample::Index>(),
                damage in damage(),
            ) {
                let at = at.index(file.rows.len());
                let (rows, error) = read_rows(&file.text(Some((at, damage))));
                let error = error.expect("the damaged row is refused");
                // The header is line 1; row `at` is line at + 2.
                let place = format!("d.csv:{}: ", at + 2);
                prop_assert!(error.message.contains(&place), "{damage:?}: {error}");
                let why = match damage {
                    Damage::DropField | Damage::ExtraField => "fields, found",
                    Damage::NotANumber | Damage::NotFinite | Damage::EmptyCell => "is not a finite number",
                    Damage::FractionalLabel => "label `0.5`: not an integer class id",
                };
                prop_assert!(error.message.contains(why), "{damage:?}: {error}");
                // Whole chunks before the damaged one were read, and read right.
                let before = at - at % 3;
                prop_assert_eq!(rows.as_slice(), &file.rows[..before]);
            }

            #[test]
            fn any_text_is_read_or_refused_naming_the_file(text in any::<String>()) {
                read_all(&text)?;
            }

            #[test]
            fn csv_like_rows_are_read_or_refused_naming_file_and_line(
                body in "([0-9.eE+-]{0,4}|nan|inf|x)(,([0-9.eE+-]{0,4}|nan|inf|x)){0,3}(\n([0-9.eE+-]{0,4}|nan|inf|x)(,([0-9.eE+-]{0,4}|nan|inf|x)){0,3}){0,8}",
            ) {
                read_all(&format!("a,b,y\n{body}\n"))?;
            }
        }
    }
}
