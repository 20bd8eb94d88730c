//! Uniformly partitioned overlap-save convolution on the GPU: the engine under both
//! the reverb bank and the FIR bank.
//!
//! # Brief overview
//! A *group* has two input channels (L, R) and one frequency-domain delay line (FDL)
//! per channel; it feeds one or more *filter sets* (an IR of 1, 2 or 4 channels), each
//! producing a stereo output. Per block, with P = block length, M = 2P:
//! 1. host → device: every input channel's last 2P samples (previous block + this one);
//! 2. forward: batched P-point complex Stockham FFT of those samples read as P complex
//!    values, then `real_unpack` to the P+1 bins of the M-point real FFT;
//! 3. copies push each new spectrum into its FDL (a doubled ring, so every partition
//!    range reads contiguously); when the FDL is split into chunks to respect the
//!    storage binding limit, the oldest spectrum of each chunk moves to the next chunk;
//! 4. `mac`: Σ_j X(k−j)·H(j) per output, one dispatch per (output, chunk);
//! 5. `real_pack`, batched inverse FFT; the last P samples of each output (overlap-save)
//!    are copied to one staging buffer, read back once.
//!
//! Everything runs in one command encoder and one submission per block.

use std::sync::Arc;

use super::{GpuContext, range_entry};
use crate::dsp::convolution::{partition_spectra, partitions};
use crate::{Error, Result};

/// Stages (radix, ns) of an n-point Stockham FFT: radix 4, plus one radix-2 stage
/// when log2(n) is odd.
pub(crate) fn fft_stages(n: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut ns = 1;
    while n / ns >= 4 {
        v.push((4, ns));
        ns *= 4;
    }
    if n / ns == 2 {
        v.push((2, ns));
    }
    v
}

/// An IR's partition spectra on the device, cut into chunks of at most `chunk`
/// partitions (each chunk one buffer within the storage binding limit), laid out
/// [partition][IR channel][bin] with `stride` elements per spectrum.
pub struct FilterSet {
    nch: usize,
    parts: usize,
    chunk: usize,
    chunks: Vec<wgpu::Buffer>,
}

impl FilterSet {
    /// Bytes on the device.
    pub(crate) fn bytes(&self) -> u64 {
        self.chunks.iter().map(wgpu::Buffer::size).sum()
    }
    fn count(&self, c: usize) -> usize {
        (self.parts - c * self.chunk).min(self.chunk)
    }
}

struct Group {
    /// Ring length of every FDL chunk (in spectra; each ring is doubled).
    ring: usize,
    /// FDL chunks: [chunk][channel].
    fdl: Vec<[wgpu::Buffer; 2]>,
    sets: Vec<Arc<FilterSet>>,
}

/// One MAC dispatch: group, output index (global), set, chunk.
struct MacJob {
    group: usize,
    out: usize,
    chunk: usize,
    count: usize,
    nch: usize,
    bind: wgpu::BindGroup,
}

/// Per-bank device resources sized for the current groups.
struct Res {
    b_in: usize,
    b_out: usize,
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    spec: wgpu::Buffer,
    acc: wgpu::Buffer,
    staging: wgpu::Buffer,
    params: wgpu::Buffer,
    fwd: Vec<wgpu::BindGroup>,
    inv: Vec<wgpu::BindGroup>,
    unpack: wgpu::BindGroup,
    pack: wgpu::BindGroup,
    macs: Vec<MacJob>,
    mac_param_base: usize,
    param_bytes: Vec<u8>,
    frames: Vec<f32>,
    readback: Vec<f32>,
}

/// The GPU UPOLS engine (see the module docs).
pub(crate) struct GpuUpols {
    ctx: Arc<GpuContext>,
    block: usize,
    stride: usize,
    /// Most partitions one chunk may hold (binding limit, 4-channel IRs).
    chunk_limit: usize,
    stages: Vec<(usize, usize)>,
    tw: wgpu::Buffer,
    groups: Vec<Group>,
    res: Option<Res>,
    counter: usize,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl GpuUpols {
    pub(crate) fn new(ctx: Arc<GpuContext>, block: usize) -> Result<Self> {
        // Spectra start on 512-byte boundaries: any storage offset alignment holds.
        let stride = (block + 1).next_multiple_of(64);
        let chunk_limit = (ctx.max_binding() / (4 * stride as u64 * 8)).max(1) as usize;
        let tw = ctx.scoped("twiddle table", || {
            let tw = ctx.take_buffer(2 * block as u64 * 8, STORAGE, "twiddles");
            ctx.queue.write_buffer(
                &tw,
                0,
                bytemuck::cast_slice(&GpuContext::twiddles(2 * block)),
            );
            Ok(tw)
        })?;
        Ok(GpuUpols {
            stages: fft_stages(block),
            ctx,
            block,
            stride,
            chunk_limit,
            tw,
            groups: Vec::new(),
            res: None,
            counter: 0,
        })
    }

    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The device spectra of `channels` (1, 2 or 4), from the context's cache when the
    /// same IR was used before at this block length.
    pub(crate) fn filter_set(&self, channels: &[Vec<f32>]) -> Result<Arc<FilterSet>> {
        let frames = channels.iter().map(Vec::len).max().unwrap_or(1);
        let parts = partitions(frames, self.block);
        let chunk = parts.min(self.chunk_limit);
        let mut h = blake3::Hasher::new();
        h.update(&(channels.len() as u64).to_le_bytes());
        for c in channels {
            h.update(&(c.len() as u64).to_le_bytes());
            h.update(bytemuck::cast_slice(c));
        }
        let key = (*h.finalize().as_bytes(), self.block, chunk);
        if let Ok(cache) = self.ctx.ir_cache.lock()
            && let Some(s) = cache.map.get(&key)
        {
            return Ok(s.clone());
        }
        let mut planner = realfft::RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(2 * self.block);
        let specs: Vec<_> = channels
            .iter()
            .map(|c| partition_spectra(c, self.block, parts, fft.as_ref()))
            .collect();
        let nch = channels.len();
        let (stride, bins) = (self.stride, self.block + 1);
        let n_chunks = parts.div_ceil(chunk);
        let chunks = self.ctx.scoped("uploading IR spectra", || {
            let mut out = Vec::with_capacity(n_chunks);
            for c in 0..n_chunks {
                let count = (parts - c * chunk).min(chunk);
                let mut host = vec![[0.0f32; 2]; count * nch * stride];
                for jj in 0..count {
                    for (ch, s) in specs.iter().enumerate() {
                        let dst = &mut host[(jj * nch + ch) * stride..][..bins];
                        for (d, v) in dst.iter_mut().zip(&s[c * chunk + jj]) {
                            *d = [v.re, v.im];
                        }
                    }
                }
                let buf = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("ir spectra"),
                    size: (host.len() * 8) as u64,
                    usage: STORAGE,
                    mapped_at_creation: false,
                });
                self.ctx
                    .queue
                    .write_buffer(&buf, 0, bytemuck::cast_slice(&host));
                out.push(buf);
            }
            Ok(out)
        })?;
        let set = Arc::new(FilterSet {
            nch,
            parts,
            chunk,
            chunks,
        });
        if let Ok(mut cache) = self.ctx.ir_cache.lock() {
            cache.insert(key, set.clone());
        }
        Ok(set)
    }

    /// Adds a group (stereo input) feeding `sets`; returns its index. Its outputs
    /// follow those of earlier groups, two (L, R) per set.
    pub(crate) fn add_group(&mut self, sets: Vec<Arc<FilterSet>>) -> Result<usize> {
        let parts = sets.iter().map(|s| s.parts).max().unwrap_or(1);
        let ring = parts.min(self.chunk_limit);
        let n_chunks = parts.div_ceil(ring);
        let ctx = self.ctx.clone();
        let bytes = 2 * ring as u64 * self.stride as u64 * 8;
        let fdl = ctx.scoped("allocating the delay line", || {
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("clear fdl"),
                });
            let fdl: Vec<[wgpu::Buffer; 2]> = (0..n_chunks)
                .map(|_| {
                    [0, 1].map(|_| {
                        let b = ctx.take_buffer(bytes, STORAGE, "fdl");
                        enc.clear_buffer(&b, 0, None);
                        b
                    })
                })
                .collect();
            ctx.queue.submit([enc.finish()]);
            Ok(fdl)
        })?;
        self.groups.push(Group { ring, fdl, sets });
        if let Some(r) = self.res.take() {
            self.release(r);
        }
        Ok(self.groups.len() - 1)
    }

    fn release(&self, r: Res) {
        self.ctx
            .give_back([r.a, r.b, r.spec, r.acc, r.staging, r.params]);
    }

    fn build(&self) -> Result<Res> {
        let ctx = &self.ctx;
        let (p, stride) = (self.block, self.stride);
        let b_in = 2 * self.groups.len();
        let b_out: usize = self.groups.iter().map(|g| 2 * g.sets.len()).sum();
        let rows = b_in.max(b_out);
        let work = (rows * p * 8) as u64;
        let specs = (rows * stride * 8) as u64;
        if work.max(specs) > ctx.max_binding() {
            return Err(Error::Limit(format!(
                "{}: {rows} channels of {p}-frame blocks exceed the storage binding limit of {} bytes; use fewer reverbs or a smaller block",
                ctx.adapter_name(),
                ctx.max_binding()
            )));
        }
        let s = self.stages.len();
        // Params: forward stages, inverse stages, unpack, pack, then the MAC jobs.
        let mut macs_meta = Vec::new();
        let mut out = 0;
        for (gi, g) in self.groups.iter().enumerate() {
            for set in &g.sets {
                for c in 0..set.chunks.len() {
                    macs_meta.push((gi, out, c, set.count(c), set.nch, set.clone()));
                }
                out += 1;
            }
        }
        let mac_param_base = 2 * s + 2;
        let n_params = mac_param_base + macs_meta.len();
        ctx.scoped("building the convolution buffers", || {
            let a = ctx.take_buffer(work, STORAGE, "work a");
            let b = ctx.take_buffer(work, STORAGE, "work b");
            let spec = ctx.take_buffer((b_in * stride * 8) as u64, STORAGE, "spectra");
            let acc = ctx.take_buffer((b_out * stride * 8) as u64, STORAGE, "accumulators");
            let staging = ctx.take_buffer(
                (b_out * p * 4) as u64,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                "readback",
            );
            let params = ctx.take_buffer(
                (n_params * 256) as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                "params",
            );
            let mut pb = vec![0u8; n_params * 256];
            let mut put = |i: usize, v: &[u32]| {
                pb[i * 256..i * 256 + v.len() * 4].copy_from_slice(bytemuck::cast_slice(v));
            };
            for (i, &(radix, ns)) in self.stages.iter().enumerate() {
                let w = |batch: usize, inv: u32| {
                    [
                        p as u32,
                        ns as u32,
                        radix as u32,
                        inv,
                        (batch * p / radix) as u32,
                        2,
                        0,
                        0,
                    ]
                };
                put(i, &w(b_in, 0));
                put(s + i, &w(b_out, 1));
            }
            put(
                2 * s,
                &[p as u32, stride as u32, (b_in * (p + 1)) as u32, 0],
            );
            put(2 * s + 1, &[p as u32, stride as u32, (b_out * p) as u32, 0]);
            let pingpong = |i: usize| {
                if i.is_multiple_of(2) {
                    (&a, &b)
                } else {
                    (&b, &a)
                }
            };
            let fwd = (0..s)
                .map(|i| {
                    let (src, dst) = pingpong(i);
                    ctx.fft_bind_group(&params, (i * 256) as u64, src, dst, &self.tw, None)
                })
                .collect();
            let inv = (0..s)
                .map(|i| {
                    let (src, dst) = pingpong(i);
                    ctx.fft_bind_group(&params, ((s + i) * 256) as u64, src, dst, &self.tw, None)
                })
                .collect();
            let result = if s.is_multiple_of(2) { &a } else { &b };
            let unpack =
                ctx.fft_bind_group(&params, (2 * s * 256) as u64, result, &spec, &self.tw, None);
            let pack = ctx.fft_bind_group(
                &params,
                ((2 * s + 1) * 256) as u64,
                &acc,
                &a,
                &self.tw,
                None,
            );
            let macs = macs_meta
                .into_iter()
                .enumerate()
                .map(|(i, (group, out, chunk, count, nch, set))| {
                    let g = &self.groups[group];
                    let [x0, x1] = &g.fdl[chunk];
                    let h = &set.chunks[chunk];
                    let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("mac"),
                        layout: &ctx.mac_layout,
                        entries: &[
                            wgpu::BindGroupEntry {
                                binding: 0,
                                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                    buffer: &params,
                                    offset: ((mac_param_base + i) * 256) as u64,
                                    size: std::num::NonZeroU64::new(64),
                                }),
                            },
                            range_entry(1, h, 0, h.size()),
                            range_entry(2, x0, 0, x0.size()),
                            range_entry(3, x1, 0, x1.size()),
                            range_entry(4, &acc, 0, acc.size()),
                        ],
                    });
                    MacJob {
                        group,
                        out,
                        chunk,
                        count,
                        nch,
                        bind,
                    }
                })
                .collect();
            Ok(Res {
                b_in,
                b_out,
                fwd,
                inv,
                unpack,
                pack,
                macs,
                mac_param_base,
                param_bytes: pb,
                frames: vec![0.0; b_in * 2 * p],
                readback: vec![0.0; b_out * p],
                a,
                b,
                spec,
                acc,
                staging,
                params,
            })
        })
    }

    /// Convolves one block: `inputs[g]` is group g's stereo block; `outputs` lists every
    /// output channel (group by group, set by set, L then R).
    pub(crate) fn process(
        &mut self,
        inputs: &[[&[f32]; 2]],
        outputs: &mut [&mut [f32]],
    ) -> Result<()> {
        if self.res.is_none() {
            self.res = Some(self.build()?);
        }
        let (ctx, p, stride) = (self.ctx.clone(), self.block, self.stride);
        let Some(res) = self.res.as_mut() else {
            return Err(Error::Internal("gpu convolution: resources missing".into()));
        };
        if inputs.len() * 2 != res.b_in || outputs.len() != res.b_out {
            return Err(Error::Internal(format!(
                "gpu convolution: {} inputs / {} outputs for {} / {} channels",
                inputs.len() * 2,
                outputs.len(),
                res.b_in,
                res.b_out
            )));
        }
        self.counter += 1;
        let counter = self.counter;
        for (f, x) in res
            .frames
            .chunks_exact_mut(2 * p)
            .zip(inputs.iter().flatten())
        {
            f.copy_within(p.., 0);
            f[p..].copy_from_slice(x);
        }
        for (i, m) in res.macs.iter().enumerate() {
            let g = &self.groups[m.group];
            let v = [
                stride as u32,
                (p + 1) as u32,
                m.count as u32,
                m.nch as u32,
                g.ring as u32,
                (counter % g.ring) as u32,
                (m.chunk > 0) as u32,
                (2 * m.out * stride) as u32,
                ((2 * m.out + 1) * stride) as u32,
                0,
                0,
                0,
            ];
            let off = (res.mac_param_base + i) * 256;
            res.param_bytes[off..off + 48].copy_from_slice(bytemuck::cast_slice(&v));
        }
        let s = self.stages.len();
        let groups = &self.groups;
        let r = ctx.scoped("convolution block", || {
            ctx.queue
                .write_buffer(&res.a, 0, bytemuck::cast_slice(&res.frames));
            // All params (a few KiB): the stage entries once built, the MAC positions per block.
            ctx.queue.write_buffer(&res.params, 0, &res.param_bytes);
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("convolution block"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&ctx.fft_pipeline);
                for (i, bg) in res.fwd.iter().enumerate() {
                    pass.set_bind_group(0, bg, &[]);
                    ctx.dispatch(&mut pass, (res.b_in * p / self.stages[i].0) as u64)?;
                }
                pass.set_pipeline(&ctx.unpack_pipeline);
                pass.set_bind_group(0, &res.unpack, &[]);
                ctx.dispatch(&mut pass, (res.b_in * (p + 1)) as u64)?;
            }
            // Push the new spectra into the delay lines (oldest of each chunk moves on).
            let sb = (stride * 8) as u64;
            for (gi, g) in groups.iter().enumerate() {
                let pos = (counter % g.ring) as u64;
                let ring = g.ring as u64;
                for c in (0..g.fdl.len().saturating_sub(1)).rev() {
                    for ch in 0..2 {
                        let (src, dst) = (&g.fdl[c][ch], &g.fdl[c + 1][ch]);
                        enc.copy_buffer_to_buffer(src, pos * sb, dst, pos * sb, sb);
                        enc.copy_buffer_to_buffer(src, pos * sb, dst, (pos + ring) * sb, sb);
                    }
                }
                for ch in 0..2 {
                    let src_off = ((2 * gi + ch) * stride * 8) as u64;
                    let dst = &g.fdl[0][ch];
                    enc.copy_buffer_to_buffer(&res.spec, src_off, dst, pos * sb, sb);
                    enc.copy_buffer_to_buffer(&res.spec, src_off, dst, (pos + ring) * sb, sb);
                }
            }
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&ctx.mac_pipeline);
                for m in &res.macs {
                    pass.set_bind_group(0, &m.bind, &[]);
                    ctx.dispatch(&mut pass, (p + 1) as u64)?;
                }
                pass.set_pipeline(&ctx.pack_pipeline);
                pass.set_bind_group(0, &res.pack, &[]);
                ctx.dispatch(&mut pass, (res.b_out * p) as u64)?;
                pass.set_pipeline(&ctx.fft_pipeline);
                for (i, bg) in res.inv.iter().enumerate() {
                    pass.set_bind_group(0, bg, &[]);
                    ctx.dispatch(&mut pass, (res.b_out * p / self.stages[i].0) as u64)?;
                }
            }
            let result = if s.is_multiple_of(2) { &res.a } else { &res.b };
            // Overlap-save: keep real samples [P, 2P) = complex elements [P/2, P).
            for o in 0..res.b_out {
                enc.copy_buffer_to_buffer(
                    result,
                    (o * p * 8 + p * 4) as u64,
                    &res.staging,
                    (o * p * 4) as u64,
                    (p * 4) as u64,
                );
            }
            ctx.submit_and_read(enc, &res.staging, &mut res.readback)
        });
        r?;
        for (o, y) in outputs.iter_mut().enumerate() {
            y.copy_from_slice(&res.readback[o * p..(o + 1) * p]);
        }
        Ok(())
    }
}

impl Drop for GpuUpols {
    fn drop(&mut self) {
        if let Some(r) = self.res.take() {
            self.release(r);
        }
        let fdl = self
            .groups
            .drain(..)
            .flat_map(|g| g.fdl.into_iter().flatten());
        self.ctx.give_back(fdl);
    }
}
