//! A data-parallel step's result as one process on the whole batch would have it: each
//! rank's loss, gradients and updates weighted by its share of the rows and added over the
//! ranks. Dense tensors travel in one fused allreduce; row-sparse gradients (embeddings,
//! linear models) by allgather of their rows and values, joined in rank order, so a table
//! row touched by two ranks gets both parts, which the optimizer adds.

use abi_stable::std_types::{ROption, RVec};
use estimator_plugin_api::abi::{EstimatorSpec, Tensor, TensorBuf};

use super::Replicas;

/// Averages `spec`'s loss, gradients and updates over the ranks, this rank having computed
/// them on `local_rows` of a batch of `global_rows`. `fused` is a buffer reused from step
/// to step.
pub fn average_over_ranks(
    spec: &mut EstimatorSpec,
    local_rows: usize,
    global_rows: usize,
    replicas: &Replicas,
    fused: &mut Vec<f32>,
) {
    if !replicas.is_distributed() {
        return;
    }
    let weight = local_rows as f32 / global_rows.max(1) as f32;
    // The dense values, weighted, in one buffer: the loss first, then each dense gradient
    // and update in order.
    fused.clear();
    fused.push(spec.loss.into_option().map_or(0.0, |l| l * weight));
    for values in dense_values(spec) {
        fused.extend(values.iter().map(|v| v * weight));
    }
    replicas.sum(fused);
    let mut summed = fused.iter().copied();
    if let ROption::RSome(loss) = &mut spec.loss {
        *loss = summed.next().unwrap_or(*loss);
    } else {
        summed.next();
    }
    for values in dense_values_mut(spec) {
        for (v, s) in values.iter_mut().zip(&mut summed) {
            *v = s;
        }
    }
    for g in spec.gradients.iter_mut() {
        let ROption::RSome(rows) = &g.rows else {
            continue;
        };
        let TensorBuf::F32(values) = &g.values.data else {
            continue;
        };
        let weighted: Vec<f32> = values.iter().map(|v| v * weight).collect();
        let (all_rows, all_values) = replicas.gather_rows(rows, &weighted);
        let mut shape = g.values.shape.to_vec();
        if let Some(first) = shape.first_mut() {
            *first = all_rows.len();
        }
        g.values = Tensor::f32(shape, all_values);
        g.rows = ROption::RSome(RVec::from(all_rows));
    }
}

/// The F32 values of the dense gradients, then of the updates, in order.
fn dense_values(spec: &EstimatorSpec) -> impl Iterator<Item = &[f32]> {
    let gradients = spec
        .gradients
        .iter()
        .filter(|g| g.rows.is_none())
        .map(|g| &g.values);
    gradients
        .chain(spec.updates.iter().map(|u| &u.tensor))
        .filter_map(|t| match &t.data {
            TensorBuf::F32(v) => Some(v.as_slice()),
            _ => None,
        })
}

fn dense_values_mut(spec: &mut EstimatorSpec) -> impl Iterator<Item = &mut [f32]> {
    let gradients = spec
        .gradients
        .iter_mut()
        .filter(|g| g.rows.is_none())
        .map(|g| &mut g.values);
    gradients
        .chain(spec.updates.iter_mut().map(|u| &mut u.tensor))
        .filter_map(|t| match &mut t.data {
            TensorBuf::F32(v) => Some(v.as_mut_slice()),
            _ => None,
        })
}
