//! Lists of views rebuilt every step (a batch's features, the variables model_fn reads)
//! keep one allocation for the whole run: the list is emptied after the step and its
//! buffer reused for the next step's views, which borrow anew.

use estimator_plugin_api::abi::NamedView;

/// An empty list on `used`'s allocation, for views of any lifetime. The views are
/// dropped first, so nothing borrowed outlives them; the buffer only changes hands.
pub fn recycle<'b>(mut used: Vec<NamedView<'_>>) -> Vec<NamedView<'b>> {
    used.clear();
    // Collecting a mapped `IntoIter` into a `Vec` of a same-sized type reuses its buffer
    // (std's in-place collection); the closure never runs on an empty list.
    used.into_iter()
        .map(|_| unreachable!("the list was emptied"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::TensorView;

    #[test]
    fn the_buffer_is_kept() {
        let data = [1.0f32, 2.0];
        let shape = [2usize];
        let mut list: Vec<NamedView<'_>> = Vec::with_capacity(8);
        list.push(NamedView {
            name: "x".into(),
            tensor: TensorView::f32(&shape, &data),
        });
        let buffer = list.as_ptr() as usize;
        let reused: Vec<NamedView<'static>> = recycle(list);
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), 8);
        assert_eq!(reused.as_ptr() as usize, buffer);
    }
}
