//! Tensors at the boundary: borrowed views going in, owned buffers coming out.

use abi_stable::{
    std_types::{RSlice, RStr, RString, RVec},
    StableAbi,
};

/// Element type of a tensor.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I64,
    Str,
}

/// Borrowed elements of a tensor, row-major.
#[repr(C, u8)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub enum TensorData<'a> {
    F32(RSlice<'a, f32>),
    I64(RSlice<'a, i64>),
    Str(RSlice<'a, RString>),
}

/// A borrowed tensor: shape plus row-major data, valid for the duration of one call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub shape: RSlice<'a, usize>,
    pub data: TensorData<'a>,
}

/// A borrowed tensor with its name (a feature, a variable).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct NamedView<'a> {
    pub name: RStr<'a>,
    pub tensor: TensorView<'a>,
}

/// Owned elements of a tensor created by a plugin.
#[repr(C, u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum TensorBuf {
    F32(RVec<f32>),
    I64(RVec<i64>),
    Str(RVec<RString>),
}

/// An owned tensor created by a plugin (predictions, gradients, input chunks).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: RVec<usize>,
    pub data: TensorBuf,
}

/// An owned tensor with its name.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: RString,
    pub tensor: Tensor,
}

impl TensorData<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::Str(_) => DType::Str,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(s) => s.len(),
            TensorData::I64(s) => s.len(),
            TensorData::Str(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> TensorView<'a> {
    pub fn f32(shape: &'a [usize], data: &'a [f32]) -> Self {
        TensorView {
            shape: shape.into(),
            data: TensorData::F32(data.into()),
        }
    }

    pub fn i64(shape: &'a [usize], data: &'a [i64]) -> Self {
        TensorView {
            shape: shape.into(),
            data: TensorData::I64(data.into()),
        }
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Size of the leading (batch) dimension; 1 for a scalar.
    pub fn batch_len(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

impl TensorBuf {
    pub fn dtype(&self) -> DType {
        match self {
            TensorBuf::F32(_) => DType::F32,
            TensorBuf::I64(_) => DType::I64,
            TensorBuf::Str(_) => DType::Str,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorBuf::F32(v) => v.len(),
            TensorBuf::I64(v) => v.len(),
            TensorBuf::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Tensor {
            shape: shape.into(),
            data: TensorBuf::F32(data.into()),
        }
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        Tensor {
            shape: shape.into(),
            data: TensorBuf::I64(data.into()),
        }
    }

    /// A string tensor; each `String`'s buffer is moved, not copied.
    pub fn strings(shape: Vec<usize>, data: Vec<String>) -> Self {
        Tensor {
            shape: shape.into(),
            data: TensorBuf::Str(data.into_iter().map(RString::from).collect()),
        }
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The elements when the dtype is I64.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorBuf::I64(v) => Some(v.as_slice()),
            _ => None,
        }
    }

    /// The elements when the dtype is F32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorBuf::F32(v) => Some(v.as_slice()),
            _ => None,
        }
    }

    /// A borrowed view of this tensor.
    pub fn view(&self) -> TensorView<'_> {
        let data = match &self.data {
            TensorBuf::F32(v) => TensorData::F32(v.as_slice().into()),
            TensorBuf::I64(v) => TensorData::I64(v.as_slice().into()),
            TensorBuf::Str(v) => TensorData::Str(v.as_slice().into()),
        };
        TensorView {
            shape: self.shape.as_slice().into(),
            data,
        }
    }

    /// Number of elements the shape describes.
    pub fn shape_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the leading (batch) dimension; 1 for a scalar.
    pub fn batch_len(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        NamedTensor {
            name: RString::from(name.into()),
            tensor,
        }
    }
}
