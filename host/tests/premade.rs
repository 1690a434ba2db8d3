//! The premade estimators through the real binary, each on a data set it suits, reaching
//! the quality `docs/manifest.md` records.

mod common;

use common::{config_in, ok, p};

#[test]
fn dnn_regressor_beats_the_mean_on_diabetes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = config_in(dir.path(), "diabetes_dnn_regressor.yaml", |t| t);
    ok(&["train", p(&manifest)]);
    let out = ok(&["evaluate", p(&manifest), "--json"]);
    let m: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let rmse = m["rmse"].as_f64().expect("rmse");
    // Predicting the training mean gives 70.5 on the test set.
    assert!(rmse < 60.0, "test RMSE {rmse}");
    // The metrics plugin's RMSE and the head's average loss describe the same errors.
    let average_loss = m["average_loss"].as_f64().expect("average_loss");
    assert!(
        (rmse - average_loss.sqrt()).abs() < 1e-2,
        "{rmse} vs sqrt({average_loss})"
    );
    assert!(m["label/mean"].as_f64().is_some() && m["prediction/mean"].as_f64().is_some());
    let predictions = ok(&["predict", p(&manifest)]);
    let first: serde_json::Value =
        serde_json::from_str(predictions.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["predictions"].as_array().map(Vec::len), Some(1));
}
