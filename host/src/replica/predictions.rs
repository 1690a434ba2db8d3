//! A data-parallel prediction's batch on rank 0: every rank's prediction tensors for its
//! rows, gathered to rank 0 and joined in rank order, which is the batch's row order.
//!
//! A rank's tensors travel as bytes: for each, its name, its type, its shape and its
//! values, little-endian.

use abi_stable::std_types::{RString, RVec};
use estimator_plugin_api::abi::{NamedTensor, Tensor, TensorBuf};

use super::Replicas;
use crate::error::{Error, Result};

/// The whole batch's predictions on rank 0, from each rank's `own` (none for a rank that
/// had no rows); `None` on the other ranks.
pub fn gather_predictions(
    own: Option<&[NamedTensor]>,
    replicas: &Replicas,
) -> Result<Option<Vec<NamedTensor>>> {
    if !replicas.is_distributed() {
        return Ok(own.map(<[NamedTensor]>::to_vec));
    }
    let bytes = own.map(encode).unwrap_or_default();
    let parts = replicas.gather_bytes_to_chief(&bytes);
    if !replicas.is_chief() {
        return Ok(None);
    }
    let mut joined: Option<Vec<NamedTensor>> = None;
    for (rank, part) in parts.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let tensors =
            decode(part).map_err(|e| Error::Internal(format!("rank {rank}'s predictions: {e}")))?;
        joined = Some(match joined {
            None => tensors,
            Some(so_far) => append_rows(so_far, tensors)
                .map_err(|e| Error::Internal(format!("rank {rank}'s predictions: {e}")))?,
        });
    }
    Ok(joined)
}

fn encode(tensors: &[NamedTensor]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tensors {
        put_bytes(&mut out, t.name.as_bytes());
        let (kind, len) = match &t.tensor.data {
            TensorBuf::F32(v) => (0u8, v.len()),
            TensorBuf::I64(v) => (1, v.len()),
            TensorBuf::Str(v) => (2, v.len()),
        };
        out.push(kind);
        put_u64(&mut out, t.tensor.shape.len());
        for &d in t.tensor.shape.iter() {
            put_u64(&mut out, d);
        }
        put_u64(&mut out, len);
        match &t.tensor.data {
            TensorBuf::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            TensorBuf::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            TensorBuf::Str(v) => v.iter().for_each(|x| put_bytes(&mut out, x.as_bytes())),
        }
    }
    out
}

fn decode(mut bytes: &[u8]) -> Result<Vec<NamedTensor>, String> {
    let input = &mut bytes;
    let mut tensors = Vec::new();
    while !input.is_empty() {
        let name = utf8(take_bytes(input)?)?;
        let kind = take(input, 1)?[0];
        let ndim = take_u64(input)?;
        let shape = (0..ndim)
            .map(|_| take_u64(input))
            .collect::<Result<Vec<_>, _>>()?;
        let len = take_u64(input)?;
        let data = match kind {
            0 => TensorBuf::F32(
                take(input, len.checked_mul(4).ok_or("too long")?)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            1 => TensorBuf::I64(
                take(input, len.checked_mul(8).ok_or("too long")?)?
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect(),
            ),
            2 => TensorBuf::Str(
                (0..len)
                    .map(|_| take_bytes(input).and_then(utf8).map(RString::from))
                    .collect::<Result<RVec<_>, _>>()?,
            ),
            other => return Err(format!("unknown tensor type {other}")),
        };
        let tensor = Tensor {
            shape: shape.into(),
            data,
        };
        tensors.push(NamedTensor::new(name, tensor));
    }
    Ok(tensors)
}

/// `more`'s rows after `so_far`'s, tensor by tensor.
fn append_rows(
    mut so_far: Vec<NamedTensor>,
    more: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, String> {
    if so_far.len() != more.len() {
        return Err(format!(
            "{} tensors where rank 0 has {}",
            more.len(),
            so_far.len()
        ));
    }
    for (a, b) in so_far.iter_mut().zip(more) {
        let same_rows = a.tensor.shape.get(1..) == b.tensor.shape.get(1..);
        if a.name != b.name || !same_rows {
            return Err(format!("`{}` does not match rank 0's `{}`", b.name, a.name));
        }
        match (&mut a.tensor.data, b.tensor.data) {
            (TensorBuf::F32(x), TensorBuf::F32(y)) => x.extend(y),
            (TensorBuf::I64(x), TensorBuf::I64(y)) => x.extend(y),
            (TensorBuf::Str(x), TensorBuf::Str(y)) => x.extend(y),
            _ => return Err(format!("`{}` has another type than rank 0's", b.name)),
        }
        if let (Some(rows), Some(extra)) = (a.tensor.shape.first_mut(), b.tensor.shape.first()) {
            *rows += extra;
        }
    }
    Ok(so_far)
}

fn put_u64(out: &mut Vec<u8>, n: usize) {
    out.extend((n as u64).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err("cut short".into());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn take_u64(input: &mut &[u8]) -> Result<usize, String> {
    let bytes = take(input, 8)?;
    let n = u64::from_le_bytes(bytes.try_into().map_err(|_| "cut short")?);
    usize::try_from(n).map_err(|_| "a length too large".into())
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = take_u64(input)?;
    take(input, len)
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a name or string is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictions(rows: usize, offset: usize) -> Vec<NamedTensor> {
        let ids: Vec<i64> = (0..rows).map(|r| (r + offset) as i64).collect();
        let probs: Vec<f32> = (0..rows * 2)
            .map(|v| (v + 2 * offset) as f32 / 10.0)
            .collect();
        let names: Vec<String> = ids.iter().map(|i| format!("class {i}")).collect();
        vec![
            NamedTensor::new("class_ids", Tensor::i64(vec![rows], ids)),
            NamedTensor::new("probabilities", Tensor::f32(vec![rows, 2], probs)),
            NamedTensor::new("classes", Tensor::strings(vec![rows], names)),
        ]
    }

    #[test]
    fn predictions_survive_the_trip_and_join_in_row_order() {
        let (a, b) = (predictions(3, 0), predictions(2, 3));
        assert_eq!(decode(&encode(&a)).as_ref(), Ok(&a));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
        // Rows 0-2 then 3-4 are the five rows computed at once.
        assert_eq!(append_rows(a, b), Ok(predictions(5, 0)));
    }

    #[test]
    fn cut_or_mismatched_parts_are_refused() {
        let bytes = encode(&predictions(3, 0));
        for cut in [1, 9, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = predictions(1, 0);
        other.swap(0, 1);
        assert!(append_rows(predictions(1, 0), other).is_err());
        assert!(append_rows(predictions(1, 0), predictions(1, 0)[..2].to_vec()).is_err());
    }

    #[test]
    fn one_process_keeps_its_own() {
        let own = predictions(2, 0);
        let kept = gather_predictions(Some(&own), &Replicas::single()).expect("kept");
        assert_eq!(kept, Some(own));
    }
}
