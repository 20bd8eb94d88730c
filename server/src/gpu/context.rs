//! The wgpu context: instance, adapter, device, queue, the compute pipelines built once,
//! the buffer pool, the IR-spectrum cache, submission with error scopes and the test
//! hook that injects a device failure.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::engine::FilterSet;
use crate::{Error, Result};

const FFT_WGSL: &str = include_str!("../../../shaders/fft.wgsl");
const REAL_WGSL: &str = include_str!("../../../shaders/real_fft.wgsl");
const MAC_WGSL: &str = include_str!("../../../shaders/mac.wgsl");

/// Threads per workgroup in every shader.
pub(crate) const WORKGROUP: u32 = 64;
/// Bytes kept in the buffer pool at most (the rest is freed).
const POOL_MAX_BYTES: u64 = 512 << 20;
/// Bytes of IR spectra kept in the cache at most.
const IR_CACHE_MAX_BYTES: u64 = 1 << 30;

/// One wgpu device per server: pipelines built once, buffers pooled.
pub struct GpuContext {
    // Kept alive for the device's sake.
    _instance: wgpu::Instance,
    _adapter: wgpu::Adapter,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) fft_layout: wgpu::BindGroupLayout,
    pub(crate) mac_layout: wgpu::BindGroupLayout,
    pub(crate) fft_pipeline: wgpu::ComputePipeline,
    pub(crate) unpack_pipeline: wgpu::ComputePipeline,
    pub(crate) pack_pipeline: wgpu::ComputePipeline,
    pub(crate) mac_pipeline: wgpu::ComputePipeline,
    pool: Mutex<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
    pool_bytes: AtomicU64,
    pub(crate) ir_cache: Mutex<IrCache>,
    /// Submissions left before an injected failure (0: none pending).
    fail_countdown: AtomicU64,
    lost: Arc<AtomicBool>,
    /// Test override of the storage binding limit (0: the adapter's).
    binding_override: AtomicU64,
}

/// IR spectra on the device, by (content hash, block length, chunk length).
#[derive(Default)]
pub(crate) struct IrCache {
    pub(crate) map: HashMap<([u8; 32], usize, usize), Arc<FilterSet>>,
    pub(crate) order: Vec<([u8; 32], usize, usize)>,
    pub(crate) bytes: u64,
}

impl IrCache {
    /// Inserts, evicting the oldest entries no bank still holds when over budget.
    pub(crate) fn insert(&mut self, key: ([u8; 32], usize, usize), set: Arc<FilterSet>) {
        self.bytes += set.bytes();
        self.map.insert(key, set);
        self.order.push(key);
        let mut i = 0;
        while self.bytes > IR_CACHE_MAX_BYTES && i < self.order.len() {
            let k = self.order[i];
            let unused = self.map.get(&k).is_some_and(|s| Arc::strong_count(s) == 1);
            if unused {
                if let Some(s) = self.map.remove(&k) {
                    self.bytes -= s.bytes();
                }
                self.order.remove(i);
            } else {
                i += 1;
            }
        }
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl GpuContext {
    /// Finds an adapter, opens a device with the adapter's own limits and builds the
    /// pipelines. Err when there is no adapter or the shaders fail (never panics).
    pub fn new_blocking() -> Result<Arc<GpuContext>> {
        pollster::block_on(Self::new_async())
    }

    async fn new_async() -> Result<Arc<GpuContext>> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter: {e}")))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("bounce"),
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("{}: cannot open device: {e}", info.name)))?;
        let lost = Arc::new(AtomicBool::new(false));
        {
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                tracing::error!(?reason, %msg, "GPU device lost");
                lost.store(true, Ordering::SeqCst);
            });
        }
        // Errors are caught by scopes; anything that escapes is logged, not a panic.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            tracing::error!(error = %e, "uncaptured GPU error");
        }));
        let limits = device.limits();

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let fft_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("fft layout"),
            entries: &[
                uniform_entry(0),
                storage_entry(1, true),
                storage_entry(2, false),
                storage_entry(3, true),
            ],
        });
        let mac_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("mac layout"),
            entries: &[
                uniform_entry(0),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, true),
                storage_entry(4, false),
            ],
        });
        let pipeline = |src: &str, layout: &wgpu::BindGroupLayout, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let fft_pipeline = pipeline(FFT_WGSL, &fft_layout, "fft_stage");
        let unpack_pipeline = pipeline(REAL_WGSL, &fft_layout, "real_unpack");
        let pack_pipeline = pipeline(REAL_WGSL, &fft_layout, "real_pack");
        let mac_pipeline = pipeline(MAC_WGSL, &mac_layout, "mac");
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!(
                "{}: building the shaders failed: {e}",
                info.name
            )));
        }
        tracing::info!(adapter = %info.name, device_type = ?info.device_type, "GPU context ready");
        Ok(Arc::new(GpuContext {
            _instance: instance,
            _adapter: adapter,
            device,
            queue,
            info,
            limits,
            fft_layout,
            mac_layout,
            fft_pipeline,
            unpack_pipeline,
            pack_pipeline,
            mac_pipeline,
            pool: Mutex::new(HashMap::new()),
            pool_bytes: AtomicU64::new(0),
            ir_cache: Mutex::new(IrCache::default()),
            fail_countdown: AtomicU64::new(0),
            lost,
            binding_override: AtomicU64::new(0),
        }))
    }

    /// False for software adapters (device type Cpu, llvmpipe, lavapipe, SwiftShader).
    pub fn is_hardware(&self) -> bool {
        let name = self.info.name.to_ascii_lowercase();
        self.info.device_type != wgpu::DeviceType::Cpu
            && !["llvmpipe", "lavapipe", "swiftshader", "softpipe"]
                .iter()
                .any(|s| name.contains(s))
    }

    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub fn adapter_name(&self) -> String {
        self.info.name.clone()
    }

    /// Test hook: after `submissions` more successful submissions, the next one fails as
    /// a lost device would (0: the very next one). The bank that sees it returns
    /// [`Error::Gpu`] from then on; the context itself stays usable for new banks.
    pub fn inject_failure_after(&self, submissions: u64) {
        self.fail_countdown.store(submissions + 1, Ordering::SeqCst);
    }

    /// Called before every submission: Err on a lost device or an injected failure.
    pub(crate) fn before_submit(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Gpu(format!("{}: device lost", self.info.name)));
        }
        let prev = self
            .fail_countdown
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .unwrap_or(0);
        if prev == 1 {
            return Err(Error::Gpu(format!(
                "{}: device lost (injected failure)",
                self.info.name
            )));
        }
        Ok(())
    }

    /// The largest storage binding in bytes.
    pub(crate) fn max_binding(&self) -> u64 {
        let adapter = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        match self.binding_override.load(Ordering::SeqCst) {
            0 => adapter,
            o => o.min(adapter),
        }
    }

    /// Test hook: pretend the storage binding limit is `bytes`, so that tests reach
    /// the code that splits work across bindings (affects banks made afterwards).
    pub fn limit_binding_for_tests(&self, bytes: u64) {
        self.binding_override.store(bytes, Ordering::SeqCst);
    }

    /// The largest complex FFT length [`GpuContext::fft_batch`] takes in one binding.
    pub fn max_fft_len(&self) -> usize {
        let n = (self.max_binding() / 8).min(1 << 30);
        if n == 0 {
            return 0;
        }
        1usize << (63 - n.leading_zeros())
    }

    /// A buffer from the pool (or a new one). Callers run inside an error scope.
    pub(crate) fn take_buffer(
        &self,
        size: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> wgpu::Buffer {
        let size = size.max(16).next_multiple_of(16);
        if let Ok(mut pool) = self.pool.lock()
            && let Some(b) = pool.get_mut(&(size, usage.bits())).and_then(Vec::pop)
        {
            self.pool_bytes.fetch_sub(size, Ordering::SeqCst);
            return b;
        }
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Returns buffers to the pool (freed when the pool is full).
    pub(crate) fn give_back(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        if let Ok(mut pool) = self.pool.lock() {
            for b in buffers {
                let size = b.size();
                if self.pool_bytes.load(Ordering::SeqCst) + size > POOL_MAX_BYTES {
                    continue;
                }
                self.pool_bytes.fetch_add(size, Ordering::SeqCst);
                pool.entry((size, b.usage().bits())).or_default().push(b);
            }
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes; a caught error is Err.
    pub(crate) fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        let ve = pollster::block_on(val.pop());
        let oe = pollster::block_on(oom.pop());
        if let Some(e) = oe.or(ve) {
            return Err(Error::Gpu(format!("{}: {what}: {e}", self.info.name)));
        }
        r
    }

    /// Submits `encoder`, waits, and copies `staging` (MAP_READ) into `out`.
    pub(crate) fn submit_and_read(
        &self,
        encoder: wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        out: &mut [f32],
    ) -> Result<()> {
        self.before_submit()?;
        let bytes = (out.len() * 4) as u64;
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        // Another thread's poll may be the one that runs our map callback, a moment
        // after our own poll returned: wait for it, polling again, with a bound.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mapped = loop {
            self.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(format!("{}: waiting for the GPU: {e}", self.info.name)))?;
            match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(r) => break r,
                Err(_) if std::time::Instant::now() < deadline => continue,
                Err(_) => {
                    return Err(Error::Gpu(format!(
                        "{}: readback never completed",
                        self.info.name
                    )));
                }
            }
        };
        if let Err(e) = mapped {
            return Err(Error::Gpu(format!("{}: reading back: {e}", self.info.name)));
        }
        {
            let view = staging.get_mapped_range(..bytes).map_err(|e| {
                Error::Gpu(format!("{}: mapping the readback: {e}", self.info.name))
            })?;
            out.copy_from_slice(bytemuck::cast_slice(&view));
        }
        staging.unmap();
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Gpu(format!("{}: device lost", self.info.name)));
        }
        Ok(())
    }

    /// A twiddle table of `m` entries, exp(−2πik/m), computed in float64.
    pub(crate) fn twiddles(m: usize) -> Vec<[f32; 2]> {
        (0..m)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / m as f64;
                [a.cos() as f32, a.sin() as f32]
            })
            .collect()
    }

    /// Raw batched complex FFT (the Stockham kernel alone), for tests and diagnostics:
    /// `data` holds `data.len() / n` signals of `n` points (a power of two ≥ 2);
    /// unnormalised in both directions.
    pub fn fft_batch(&self, data: &[[f32; 2]], n: usize, inverse: bool) -> Result<Vec<[f32; 2]>> {
        if n < 2 || !n.is_power_of_two() || data.is_empty() || !data.len().is_multiple_of(n) {
            return Err(Error::Internal(format!(
                "fft_batch: {} points is not a batch of a power-of-two length {n}",
                data.len()
            )));
        }
        let bytes = (data.len() * 8) as u64;
        if bytes > self.max_binding() {
            return Err(Error::Limit(format!(
                "fft_batch: {bytes} bytes exceed the adapter's storage binding limit {}",
                self.max_binding()
            )));
        }
        let batch = data.len() / n;
        let stages = super::engine::fft_stages(n);
        let su = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let (a, b, tw, params, staging) = self.scoped("fft buffers", || {
            let a = self.take_buffer(bytes, su, "fft a");
            let b = self.take_buffer(bytes, su, "fft b");
            let tw = self.take_buffer(n as u64 * 8, su, "fft twiddles");
            let params = self.take_buffer(
                256 * stages.len() as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                "fft params",
            );
            let staging = self.take_buffer(
                bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                "fft staging",
            );
            Ok((a, b, tw, params, staging))
        })?;
        let result = self.scoped("fft", || {
            self.queue.write_buffer(&a, 0, bytemuck::cast_slice(data));
            self.queue
                .write_buffer(&tw, 0, bytemuck::cast_slice(&Self::twiddles(n)));
            let mut pbytes = vec![0u8; 256 * stages.len()];
            for (i, &(radix, ns)) in stages.iter().enumerate() {
                let p = [
                    n as u32,
                    ns as u32,
                    radix as u32,
                    inverse as u32,
                    (batch * n / radix) as u32,
                    1,
                    0,
                    0,
                ];
                pbytes[i * 256..i * 256 + 32].copy_from_slice(bytemuck::cast_slice(&p));
            }
            self.queue.write_buffer(&params, 0, &pbytes);
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("fft") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&self.fft_pipeline);
                for (i, &(radix, _)) in stages.iter().enumerate() {
                    let (src, dst) = if i.is_multiple_of(2) {
                        (&a, &b)
                    } else {
                        (&b, &a)
                    };
                    let bg = self.fft_bind_group(&params, i as u64 * 256, src, dst, &tw, None);
                    pass.set_bind_group(0, &bg, &[]);
                    self.dispatch(&mut pass, (batch * n / radix) as u64)?;
                }
            }
            let res = if stages.len().is_multiple_of(2) {
                &a
            } else {
                &b
            };
            enc.copy_buffer_to_buffer(res, 0, &staging, 0, bytes);
            let mut out = vec![0.0f32; data.len() * 2];
            self.submit_and_read(enc, &staging, &mut out)?;
            Ok(out.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
        });
        self.give_back([a, b, tw, params, staging]);
        result
    }

    /// A bind group of the FFT layout: params at `param_off`, `src`, `dst` and the
    /// twiddles; `ranges` = optional ((src offset, size), (dst offset, size)).
    pub(crate) fn fft_bind_group(
        &self,
        params: &wgpu::Buffer,
        param_off: u64,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        tw: &wgpu::Buffer,
        ranges: Option<((u64, u64), (u64, u64))>,
    ) -> wgpu::BindGroup {
        let whole = |b: &wgpu::Buffer| (0u64, b.size());
        let ((so, ss), (d_o, ds)) = ranges.unwrap_or((whole(src), whole(dst)));
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.fft_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: params,
                        offset: param_off,
                        size: NonZeroU64::new(64),
                    }),
                },
                range_entry(1, src, so, ss),
                range_entry(2, dst, d_o, ds),
                range_entry(3, tw, 0, tw.size()),
            ],
        })
    }

    /// Dispatches `threads` threads (in workgroups of 64), 2-D when more than the
    /// per-dimension limit of workgroups is needed.
    pub(crate) fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, threads: u64) -> Result<()> {
        let groups = threads.div_ceil(WORKGROUP as u64).max(1);
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::Limit(format!(
                "{}: {threads} GPU threads exceed the dispatch limit",
                self.info.name
            )));
        }
        pass.dispatch_workgroups(x as u32, y as u32, 1);
        Ok(())
    }
}

/// A storage binding of `size` bytes of `buf` from `offset`.
pub(crate) fn range_entry(
    binding: u32,
    buf: &wgpu::Buffer,
    offset: u64,
    size: u64,
) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: buf,
            offset,
            size: NonZeroU64::new(size),
        }),
    }
}
