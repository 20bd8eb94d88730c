//! Reverb convolution on the device (the twin of `dsp::convolution`).

use std::sync::Arc;

use super::GpuContext;
use super::engine::GpuUpols;
use crate::dsp::convolution::{
    ConvolutionBank, ImpulseResponse, check_block_len, check_process_args,
};
use crate::{Error, Result};

/// Reverb convolution on the GPU: the same contract and results as
/// [`crate::dsp::convolution::CpuConvolutionBank`], all slots in one submission per block.
pub struct GpuConvolutionBank {
    ctx: Arc<GpuContext>,
    block_len: usize,
    core: GpuUpols,
    zeros: Vec<f32>,
    sink: Vec<Vec<f32>>,
    poisoned: bool,
}

impl GpuConvolutionBank {
    /// A bank with blocks (and partitions) of `block_len` frames (a power of two in
    /// 256..=65536).
    pub fn new(ctx: Arc<GpuContext>, block_len: usize) -> Result<Self> {
        check_block_len(block_len)?;
        Ok(GpuConvolutionBank {
            core: GpuUpols::new(ctx.clone(), block_len)?,
            ctx,
            block_len,
            zeros: vec![0.0; block_len],
            sink: Vec::new(),
            poisoned: false,
        })
    }
}

impl ConvolutionBank for GpuConvolutionBank {
    fn block_len(&self) -> usize {
        self.block_len
    }

    fn add(&mut self, ir: &ImpulseResponse) -> Result<usize> {
        let set = self.core.filter_set(&ir.channels)?;
        let g = self.core.add_group(vec![set])?;
        self.sink.push(vec![0.0; self.block_len]);
        self.sink.push(vec![0.0; self.block_len]);
        Ok(g)
    }

    fn process(
        &mut self,
        slots: &[usize],
        inputs: &[[&[f32]; 2]],
        outputs: &mut [[&mut [f32]; 2]],
    ) -> Result<()> {
        if self.poisoned {
            return Err(Error::Gpu(format!(
                "{}: an earlier GPU failure left this bank unusable",
                self.ctx.adapter_name()
            )));
        }
        let n = self.core.groups();
        check_process_args(n, self.block_len, slots, inputs, outputs)?;
        // Unlisted slots get silence and their output is dropped (as on the CPU twin).
        let mut ins: Vec<[&[f32]; 2]> = vec![[&self.zeros, &self.zeros]; n];
        for (&s, x) in slots.iter().zip(inputs) {
            ins[s] = *x;
        }
        let mut outs: Vec<&mut [f32]> = self.sink.iter_mut().map(Vec::as_mut_slice).collect();
        for (&s, [l, r]) in slots.iter().zip(outputs.iter_mut()) {
            outs[2 * s] = l;
            outs[2 * s + 1] = r;
        }
        let r = self.core.process(&ins, &mut outs);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn backend_name(&self) -> String {
        format!("gpu ({})", self.ctx.adapter_name())
    }
}
