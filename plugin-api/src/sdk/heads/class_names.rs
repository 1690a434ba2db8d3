//! Class ids and the names they go by: TF's `label_vocabulary`, or the ids as text.

use std::borrow::Cow;

use crate::abi::{PluginError, TensorData, TensorView};
use abi_stable::std_types::RString;

pub struct ClassNames {
    n_classes: usize,
    /// The vocabulary words in id order, when labels are strings.
    vocabulary: Option<Vec<String>>,
}

impl ClassNames {
    pub fn new(n_classes: usize, vocabulary: Option<Vec<String>>) -> Result<Self, PluginError> {
        if let Some(words) = &vocabulary {
            if words.len() != n_classes {
                return Err(PluginError::bad_params(format!(
                    "\"label_vocabulary\" does not have \"n_classes\" items. \
                     len(label_vocabulary)={}, n_classes={n_classes}, label_vocabulary={words:?}",
                    words.len()
                )));
            }
            let mut sorted: Vec<&String> = words.iter().collect();
            sorted.sort();
            if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(PluginError::bad_params(format!(
                    "label_vocabulary lists `{}` twice",
                    pair[0]
                )));
            }
        }
        Ok(ClassNames {
            n_classes,
            vocabulary,
        })
    }

    pub fn len(&self) -> usize {
        self.n_classes
    }

    /// Never: a head has at least two classes.
    pub fn is_empty(&self) -> bool {
        self.n_classes == 0
    }

    /// The name of class `id`: its vocabulary word, or the id as text.
    pub fn name(&self, id: i64) -> RString {
        match (&self.vocabulary, usize::try_from(id)) {
            (Some(words), Ok(i)) if i < words.len() => RString::from(words[i].as_str()),
            _ => RString::from(id.to_string()),
        }
    }

    /// Class ids of a batch of labels: integer ids as they are, borrowed (the loss checks
    /// their range), or strings looked up in the vocabulary.
    pub fn ids<'a>(&self, labels: &TensorView<'a>) -> Result<Cow<'a, [i64]>, PluginError> {
        check_column(labels)?;
        match (labels.data, &self.vocabulary) {
            (TensorData::I64(ids), None) => Ok(Cow::Borrowed(ids.as_slice())),
            (TensorData::Str(words), Some(vocabulary)) => words
                .iter()
                .map(|w| {
                    vocabulary
                        .iter()
                        .position(|v| v == w.as_str())
                        .map(|i| i as i64)
                        .ok_or_else(|| {
                            PluginError::bad_data(format!(
                                "label `{w}` is not in label_vocabulary {vocabulary:?}"
                            ))
                        })
                })
                .collect::<Result<Vec<i64>, PluginError>>()
                .map(Cow::Owned),
            (TensorData::Str(_), None) => Err(PluginError::bad_data(
                "labels are strings: set label_vocabulary to the class names in id order \
                 (or read the labels as int64 class ids)",
            )),
            (TensorData::I64(_), Some(_)) => Err(PluginError::bad_data(
                "labels are integers but label_vocabulary is set: read the label column as \
                 strings (csv `label_dtype: string`) or drop label_vocabulary",
            )),
            (TensorData::F32(_), _) => Err(PluginError::bad_data(
                "labels are float32: a classifier needs int64 class ids or strings with \
                 label_vocabulary",
            )),
        }
    }
}

/// Labels must be `[batch]` or `[batch, 1]`.
fn check_column(labels: &TensorView<'_>) -> Result<(), PluginError> {
    if labels.data.len() != labels.batch_len() {
        return Err(PluginError::bad_data(format!(
            "labels must have shape [batch] or [batch, 1], got {:?}",
            labels.shape.as_slice()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_maps_words_to_ids_and_names_back() {
        let names = ClassNames::new(2, Some(vec!["benign".into(), "malignant".into()]))
            .expect("two words for two classes");
        let words: Vec<RString> = vec!["malignant".into(), "benign".into()];
        let shape = [2usize];
        let view = TensorView {
            shape: shape.as_slice().into(),
            data: TensorData::Str(words.as_slice().into()),
        };
        assert_eq!(*names.ids(&view).expect("known words"), [1, 0]);
        assert_eq!(names.name(1).as_str(), "malignant");
        let unknown: Vec<RString> = vec!["cyst".into()];
        let one = [1usize];
        let view = TensorView {
            shape: one.as_slice().into(),
            data: TensorData::Str(unknown.as_slice().into()),
        };
        let err = names.ids(&view).unwrap_err();
        assert!(err.message.contains("label `cyst` is not in"), "{err}");
    }

    #[test]
    fn vocabulary_must_name_each_class_once() {
        let err = ClassNames::new(3, Some(vec!["a".into(), "b".into()])).err();
        assert!(
            err.is_some_and(|e| e.message.contains("len(label_vocabulary)=2, n_classes=3")),
            "TF's message"
        );
        assert!(ClassNames::new(2, Some(vec!["a".into(), "a".into()])).is_err());
        let plain = ClassNames::new(3, None).expect("ids as names");
        assert_eq!(plain.name(2).as_str(), "2");
    }
}
