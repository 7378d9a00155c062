//! A small dense f32 tensor over ndarray, NCHW for images. Ops work on its contiguous slice.
//!
//! The data is shared copy-on-write (`ArcArray`): a clone is a reference count, and the first
//! mutable access of a shared tensor copies it. Layers keep what their backward needs by cloning
//! (ReLU its output, a residual block its input) without copying activations.
use ndarray::{ArcArray, IxDyn};

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    data: ArcArray<f32, IxDyn>,
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { data: ArcArray::zeros(IxDyn(shape)) }
    }

    /// Builds a tensor from a row-major vector; panics only on a programming error (length mismatch).
    pub fn from_vec(shape: &[usize], v: Vec<f32>) -> Self {
        let data = ArcArray::from_shape_vec(IxDyn(shape), v).expect("tensor: shape does not match data length");
        Tensor { data }
    }

    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of dimension `i`.
    pub fn dim(&self, i: usize) -> usize {
        self.data.shape()[i]
    }

    pub fn as_slice(&self) -> &[f32] {
        self.data.as_slice().expect("tensor is always in standard layout")
    }

    /// The data, copied first if another tensor shares it.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        self.data.as_slice_mut().expect("tensor is always in standard layout")
    }

    /// The data as a vector (copied only if shared).
    pub fn into_vec(self) -> Vec<f32> {
        self.data.into_owned().into_raw_vec_and_offset().0
    }

    /// Same data, new shape with the same element count.
    pub fn reshape(self, shape: &[usize]) -> Self {
        let v = self.into_vec();
        Tensor::from_vec(shape, v)
    }

    pub fn array(&self) -> &ArcArray<f32, IxDyn> {
        &self.data
    }
}
