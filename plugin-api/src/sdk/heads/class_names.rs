//! Class ids and the names they go by: TF's `label_vocabulary`, or the ids as text.

use std::borrow::Cow;

use crate::abi::{NamedTensor, PluginError, Tensor, TensorBuf, TensorData, TensorView};
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

    /// TF's `classes` (each example's class name), `all_class_ids` and `all_classes`
    /// (every class, for each example) predictions of a batch's `class_ids`, for
    /// prediction output and serving.
    pub fn predictions(&self, class_ids: &[i64]) -> [NamedTensor; 3] {
        let (n, batch) = (self.n_classes, class_ids.len());
        let all_ids: Vec<i64> = (0..n as i64).cycle().take(batch * n).collect();
        let names = |ids: &[i64]| TensorBuf::Str(ids.iter().map(|&id| self.name(id)).collect());
        let classes = Tensor {
            shape: vec![batch, 1].into(),
            data: names(class_ids),
        };
        let all_classes = Tensor {
            shape: vec![batch, n].into(),
            data: names(&all_ids),
        };
        [
            NamedTensor::new("classes", classes),
            NamedTensor::new("all_class_ids", Tensor::i64(vec![batch, n], all_ids)),
            NamedTensor::new("all_classes", all_classes),
        ]
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
    fn class_name_predictions_name_each_example_and_every_class() {
        let names = ClassNames::new(3, Some(vec!["a".into(), "b".into(), "c".into()]))
            .expect("three words for three classes");
        let [classes, all_ids, all_classes] = names.predictions(&[2, 0]);
        let words = |t: &NamedTensor| match &t.tensor.data {
            TensorBuf::Str(w) => w.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(classes.name.as_str(), "classes");
        assert_eq!(classes.tensor.shape.as_slice(), [2, 1]);
        assert_eq!(words(&classes), ["c", "a"]);
        assert_eq!(all_ids.name.as_str(), "all_class_ids");
        assert_eq!(all_ids.tensor.shape.as_slice(), [2, 3]);
        assert_eq!(all_ids.tensor.as_i64(), Some([0, 1, 2, 0, 1, 2].as_slice()));
        assert_eq!(all_classes.name.as_str(), "all_classes");
        assert_eq!(all_classes.tensor.shape.as_slice(), [2, 3]);
        assert_eq!(words(&all_classes), ["a", "b", "c", "a", "b", "c"]);
    }

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
