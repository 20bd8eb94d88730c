//! Convolution benchmark (issue 3): 3 minutes of 48 kHz stereo convolved with a 3.5 s
//! stereo IR by the GPU bank, the CPU twin, and ffmpeg's `afir` on the same WAV files
//! (skipped when ffmpeg is absent). Prints x-realtime for each and their ratios.
//!
//! `cargo bench -p bounce-server --bench convolution`. Environment:
//! BOUNCE_BENCH_SECONDS (signal length, default 180), BOUNCE_BENCH_BLOCK (default
//! 16384, the engine's block), BOUNCE_BENCH_GPU_SECONDS (how much of the signal the GPU
//! runs on a software adapter, default 30; a hardware adapter runs it all).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bounce_server::dsp::convolution::{ConvolutionBank, CpuConvolutionBank, ImpulseResponse};
use bounce_server::gpu::{GpuContext, GpuConvolutionBank};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const RATE: u32 = 48_000;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn write_wav(path: &Path, ch: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: ch.len() as u16,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for i in 0..ch[0].len() {
        for c in ch {
            w.write_sample(c[i]).expect("write wav");
        }
    }
    w.finalize().expect("finalize wav");
}

/// Convolves `secs` seconds of `x` (all blocks plus the IR tail); returns wall seconds.
fn time_bank(
    bank: &mut dyn ConvolutionBank,
    ir: &ImpulseResponse,
    x: &[Vec<f32>; 2],
    frames: usize,
) -> f64 {
    let b = bank.block_len();
    let slot = bank.add(ir).expect("add IR");
    let blocks = (frames + ir.frames()).div_ceil(b);
    let zeros = vec![0.0f32; b];
    let (mut l, mut r) = (vec![0.0f32; b], vec![0.0f32; b]);
    let mut energy = 0.0f64;
    let t = Instant::now();
    for k in 0..blocks {
        let get = |c: usize| -> &[f32] {
            if (k + 1) * b <= frames {
                &x[c][k * b..(k + 1) * b]
            } else {
                &zeros
            }
        };
        bank.process(&[slot], &[[get(0), get(1)]], &mut [[&mut l, &mut r]])
            .expect("process");
        energy += l[0].abs() as f64 + r[0].abs() as f64;
    }
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(energy);
    secs
}

fn main() {
    let seconds = env_f64("BOUNCE_BENCH_SECONDS", 180.0);
    let block = env_f64("BOUNCE_BENCH_BLOCK", 16384.0) as usize;
    let frames = (seconds * RATE as f64) as usize;
    let ir_frames = (3.5 * RATE as f64) as usize;

    // A band-limited noise "song" and a decaying-noise stereo room.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x: [Vec<f32>; 2] = [0, 1].map(|_| {
        let mut s = 0.0f32;
        (0..frames)
            .map(|_| {
                s = 0.9 * s + 0.1 * rng.random_range(-1.0f32..1.0);
                s
            })
            .collect()
    });
    let ir_ch: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..ir_frames)
                .map(|i| {
                    rng.random_range(-1.0f32..1.0)
                        * (-6.0 * i as f32 / ir_frames as f32).exp()
                        * 0.1
                })
                .collect()
        })
        .collect();
    let ir = ImpulseResponse::new(ir_ch.clone(), "bench IR").expect("IR");
    println!(
        "convolution bench: {seconds} s of 48 kHz stereo, 3.5 s stereo IR, block {block} (FFT {})",
        2 * block
    );

    let cpu_secs = time_bank(&mut CpuConvolutionBank::new(block), &ir, &x, frames);
    let cpu_x = seconds / cpu_secs;
    println!(
        "  cpu twin:        {cpu_secs:7.3} s  {cpu_x:8.1}x realtime  ({} threads)",
        rayon::current_num_threads()
    );

    let mut gpu_x = None;
    match GpuContext::new_blocking() {
        Ok(ctx) => {
            let gsecs = if ctx.is_hardware() {
                seconds
            } else {
                env_f64("BOUNCE_BENCH_GPU_SECONDS", 30.0).min(seconds)
            };
            let gframes = (gsecs * RATE as f64) as usize;
            let name = ctx.adapter_name();
            let hw = ctx.is_hardware();
            match GpuConvolutionBank::new(ctx, block) {
                Ok(mut bank) => {
                    // The first block builds buffers; time a warm bank.
                    let s = time_bank(&mut bank, &ir, &x, gframes);
                    let xr = gsecs / s;
                    gpu_x = Some(xr);
                    println!(
                        "  gpu ({name}{}): {s:7.3} s for {gsecs} s  {xr:8.1}x realtime",
                        if hw { "" } else { ", software: slow by design" }
                    );
                }
                Err(e) => println!("  gpu: {e}"),
            }
        }
        Err(e) => println!("  gpu: skipped ({e})"),
    }

    let mut ff_x = None;
    if Command::new("ffmpeg").arg("-version").output().is_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (inp, irp) = (dir.path().join("in.wav"), dir.path().join("ir.wav"));
        write_wav(&inp, &x);
        write_wav(&irp, &ir_ch);
        let t = Instant::now();
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
            .arg(&inp)
            .arg("-i")
            .arg(&irp)
            .args(["-filter_complex", "[0:a][1:a]afir", "-f", "null", "-"])
            .output()
            .expect("run ffmpeg");
        let s = t.elapsed().as_secs_f64();
        if out.status.success() {
            let xr = seconds / s;
            ff_x = Some(xr);
            println!(
                "  ffmpeg afir:     {s:7.3} s  {xr:8.1}x realtime (whole process, WAV decode included)"
            );
        } else {
            println!(
                "  ffmpeg afir failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    } else {
        println!("  ffmpeg: not found, skipped");
    }

    if let Some(f) = ff_x {
        println!("  ratio cpu twin / afir: {:.2}", cpu_x / f);
    }
    if let Some(g) = gpu_x {
        println!("  ratio gpu / cpu twin:  {:.3}", g / cpu_x);
        if let Some(f) = ff_x {
            println!("  ratio gpu / afir:      {:.3}", g / f);
        }
    }
}
