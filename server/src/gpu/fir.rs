//! Linear-phase FIR banks on the device (the twin of `dsp::fir`).

use std::sync::Arc;

use super::GpuContext;
use super::engine::GpuUpols;
use crate::dsp::fir::{FirBank, check_fir_args, check_kernels, kernels_latency};
use crate::{Error, Result};

struct GpuFirBank {
    ctx: Arc<GpuContext>,
    block_len: usize,
    k: usize,
    latency: usize,
    core: GpuUpols,
    poisoned: bool,
}

/// The FIR bank on the GPU: one forward FFT per channel shared by all kernels.
pub fn gpu_fir_bank(
    ctx: Arc<GpuContext>,
    kernels: Vec<Vec<f32>>,
    block_len: usize,
) -> Result<Box<dyn FirBank>> {
    check_kernels(&kernels, block_len)?;
    let mut core = GpuUpols::new(ctx.clone(), block_len)?;
    let sets = kernels
        .iter()
        .map(|k| core.filter_set(std::slice::from_ref(k)))
        .collect::<Result<Vec<_>>>()?;
    core.add_group(sets)?;
    Ok(Box::new(GpuFirBank {
        ctx,
        block_len,
        k: kernels.len(),
        latency: kernels_latency(&kernels),
        core,
        poisoned: false,
    }))
}

impl FirBank for GpuFirBank {
    fn block_len(&self) -> usize {
        self.block_len
    }
    fn latency(&self) -> usize {
        self.latency
    }
    fn process(&mut self, input: [&[f32]; 2], outputs: &mut [[&mut [f32]; 2]]) -> Result<()> {
        if self.poisoned {
            return Err(Error::Gpu(format!(
                "{}: an earlier GPU failure left this bank unusable",
                self.ctx.adapter_name()
            )));
        }
        check_fir_args(self.k, self.block_len, input, outputs)?;
        let mut outs: Vec<&mut [f32]> = outputs
            .iter_mut()
            .flat_map(|[l, r]| [&mut **l, &mut **r])
            .collect();
        let r = self.core.process(&[input], &mut outs);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }
    fn backend_name(&self) -> String {
        format!("gpu ({})", self.ctx.adapter_name())
    }
}
