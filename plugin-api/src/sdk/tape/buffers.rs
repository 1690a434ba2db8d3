//! The tape's `f32` buffers, kept on their thread for the next step.
//!
//! A training step makes the same arrays in the same sizes every time: layer outputs,
//! their gradients, the parameters' gradients. Allocating each afresh put `malloc` and
//! `free` in about a tenth of a small model's training-loop samples, most of it for
//! buffers too large for the allocator's per-thread cache (1 KB). So a dropped tape, and the gradient buffers a
//! recycled spec carries, give their buffers back here, and the next step's products
//! take them. The tape's list of nodes is kept the same way.
//!
//! Buffers are kept by size class: class `c` holds buffers of at least `2^c` values, and
//! a buffer taken for `len` values is allocated with `2^ceil(log2 len)`, so it returns to
//! the class it serves. A few buffers are kept per class, and none above `MAX_CLASS`: a
//! large model's arrays are few and large, their products allocate their own (ndarray's
//! `dot`), and holding on to them would only add to its memory.

use std::cell::{Cell, RefCell};

use ndarray::Array2;

use super::Node;

/// The largest class kept: buffers of 16K values (64 KB). At most 2 MB is kept in all.
const MAX_CLASS: usize = 14;

/// Buffers kept per class: more than a small model's step has alive of one size.
const KEPT_PER_CLASS: usize = 16;

/// The kept buffers of each class. Built at compile time, so that reaching them costs no
/// check of a lazy initialisation: they are taken several times a step.
type Classes = [Vec<Vec<f32>>; MAX_CLASS + 1];

thread_local! {
    static SPARE: RefCell<Classes> = const { RefCell::new([const { Vec::new() }; MAX_CLASS + 1]) };
}

/// The class whose buffers hold at least `len` values: `ceil(log2 len)`.
fn class_serving(len: usize) -> usize {
    len.max(1).next_power_of_two().trailing_zeros() as usize
}

/// The class a buffer of `capacity` values can serve: `floor(log2 capacity)`.
fn class_of(capacity: usize) -> usize {
    (usize::BITS - 1 - capacity.leading_zeros()) as usize
}

/// An empty buffer with room for `len` values: a kept one when there is one.
#[inline]
pub(crate) fn take(len: usize) -> Vec<f32> {
    let class = class_serving(len);
    if class > MAX_CLASS {
        return Vec::with_capacity(len);
    }
    let kept = SPARE.with_borrow_mut(|spare| spare[class].pop());
    #[cfg(test)]
    SERVED.set(SERVED.get() + usize::from(kept.is_some()));
    kept.unwrap_or_else(|| Vec::with_capacity(1 << class))
}

/// Keeps `values`' buffer for a later `take`, unless its class is full.
#[inline]
pub(crate) fn give(mut values: Vec<f32>) {
    let capacity = values.capacity();
    if capacity == 0 {
        return;
    }
    let class = class_of(capacity);
    if class > MAX_CLASS {
        return;
    }
    values.clear();
    SPARE.with_borrow_mut(|spare| {
        let kept = &mut spare[class];
        if kept.len() < KEPT_PER_CLASS {
            kept.push(values);
        }
    });
}

thread_local! {
    /// The last tape's list of nodes, emptied.
    static NODES: Cell<Vec<Node<'static>>> = const { Cell::new(Vec::new()) };
}

/// Room for a small network's nodes at once, rather than growing five times.
const NODES_AT_FIRST: usize = 32;

/// An empty list of nodes: the last tape's when there was one.
pub(crate) fn take_nodes<'v>() -> Vec<Node<'v>> {
    let kept = NODES.take();
    match kept.capacity() {
        0 => Vec::with_capacity(NODES_AT_FIRST),
        _ => relabel(kept),
    }
}

/// Keeps a tape's list of nodes, emptied, for the next tape on this thread.
pub(crate) fn give_nodes(nodes: Vec<Node<'_>>) {
    NODES.set(relabel(nodes));
}

/// An empty list on `nodes`' allocation, for nodes borrowing for another lifetime. The
/// nodes are dropped first, so nothing borrowed outlives them; collecting a mapped
/// `IntoIter` into a `Vec` of a same-sized type reuses its buffer (std's in-place
/// collection), and the closure never runs on an empty list.
fn relabel<'b>(mut nodes: Vec<Node<'_>>) -> Vec<Node<'b>> {
    nodes.clear();
    nodes
        .into_iter()
        .map(|_| unreachable!("the list was emptied"))
        .collect()
}

#[cfg(test)]
thread_local! {
    static SERVED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many takes on this thread a kept buffer has served.
#[cfg(test)]
pub(crate) fn served() -> usize {
    SERVED.get()
}

/// Keeps `array`'s buffer.
pub(crate) fn give_array(array: Array2<f32>) {
    give(array.into_raw_vec_and_offset().0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_serve_and_down_to_keep() {
        assert_eq!(class_serving(0), 0);
        assert_eq!(class_serving(1), 0);
        assert_eq!(class_serving(2), 1);
        assert_eq!(class_serving(3), 2);
        assert_eq!(class_serving(1024), 10);
        assert_eq!(class_serving(1025), 11);
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(1023), 9);
        assert_eq!(class_of(1024), 10);
        assert_eq!(class_of(2047), 10);
    }

    #[test]
    fn a_buffer_given_back_serves_the_next_take_of_its_class() {
        let first = take(500);
        assert!(first.is_empty());
        assert_eq!(first.capacity(), 512, "allocated for its class");
        let address = first.as_ptr();
        give(first);
        let again = take(300);
        assert_eq!(again.as_ptr(), address, "the kept buffer");
        assert!(again.is_empty());
        // A buffer of another class is not used for it.
        give(again);
        let larger = take(600);
        assert_ne!(larger.as_ptr(), address);
        assert!(larger.capacity() >= 600);
    }

    #[test]
    fn a_buffer_of_any_capacity_serves_the_class_below_it() {
        let odd: Vec<f32> = Vec::with_capacity(700);
        let address = odd.as_ptr();
        give(odd);
        // 700 values serve any take of up to 512 (class 9), not 600 (class 10).
        let taken = take(600);
        assert_ne!(taken.as_ptr(), address);
        let taken = take(512);
        assert_eq!(taken.as_ptr(), address);
    }

    #[test]
    fn a_tapes_list_of_nodes_serves_the_next_tape() {
        let first = take_nodes();
        assert_eq!(first.capacity(), NODES_AT_FIRST);
        let mut grown = first;
        grown.reserve_exact(3 * NODES_AT_FIRST);
        let capacity = grown.capacity();
        give_nodes(grown);
        let second = take_nodes();
        assert!(second.is_empty());
        assert_eq!(second.capacity(), capacity, "the grown list, kept");
    }

    #[test]
    fn a_class_keeps_a_bounded_number_of_buffers() {
        let buffers: Vec<Vec<f32>> = (0..KEPT_PER_CLASS + 4).map(|_| take(10_000)).collect();
        for b in buffers {
            give(b);
        }
        let kept = SPARE.with_borrow(|spare| spare[class_serving(10_000)].len());
        assert_eq!(kept, KEPT_PER_CLASS);
    }
}
