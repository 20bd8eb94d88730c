//! The GPU kernels against their CPU twins and both against float64 references:
//! raw FFT vs rustfft (f64), partitioned convolution vs direct float64 convolution,
//! FIR band split vs the delayed input. GPU tests skip loudly without an adapter
//! (and fail with BOUNCE_REQUIRE_GPU=1); lavapipe is enough.

#![allow(clippy::unwrap_used)] // tests may unwrap

use bounce_server::dsp::convolution::{
    ConvolutionBank, CpuConvolutionBank, ImpulseResponse, direct_convolve_f64,
};
use bounce_server::dsp::fir::{FirBank, band_split_kernels, cpu_fir_bank};
use bounce_server::gpu::{GpuContext, GpuConvolutionBank, gpu_fir_bank, test_context};
use bounce_test_audio::error_db as err_db;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustfft::num_complex::Complex;

fn noise(n: usize, seed: u64) -> Vec<f32> {
    bounce_test_audio::noise(seed, n, 1.0)
}

/// A decaying noise IR of `n` samples (like a room).
fn room_ir(n: usize, seed: u64) -> Vec<f32> {
    let mut v = noise(n, seed);
    for (i, s) in v.iter_mut().enumerate() {
        *s *= (-4.0 * i as f32 / n as f32).exp();
    }
    v
}

/// `n` samples of silence with `hits` random impulses (keeps the direct reference fast).
fn sparse(n: usize, hits: usize, seed: u64) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0.0f32; n];
    for _ in 0..hits {
        v[r.random_range(0..n)] = r.random_range(-1.0f32..1.0);
    }
    v
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The float64 reference of one slot: [outL, outR] over `len` samples.
fn reference(ir: &ImpulseResponse, x: &[Vec<f32>; 2], len: usize) -> [Vec<f64>; 2] {
    let mut out = [vec![0.0; len], vec![0.0; len]];
    for (o, route) in ir.routes().iter().enumerate() {
        for &(i, h) in route {
            let y = direct_convolve_f64(&f64s(&x[i]), &f64s(&ir.channels[h]));
            for (a, b) in out[o].iter_mut().zip(y) {
                *a += b;
            }
        }
    }
    out
}

/// Runs every slot of `bank` over `blocks` blocks (inputs zero-padded); returns
/// [slot][channel] outputs.
fn run(bank: &mut dyn ConvolutionBank, xs: &[[Vec<f32>; 2]], blocks: usize) -> Vec<[Vec<f32>; 2]> {
    let b = bank.block_len();
    let slots: Vec<usize> = (0..xs.len()).collect();
    let padded: Vec<[Vec<f32>; 2]> = xs
        .iter()
        .map(|x| {
            [0, 1].map(|c| {
                let mut v = x[c].clone();
                v.resize(blocks * b, 0.0);
                v
            })
        })
        .collect();
    let mut outs: Vec<[Vec<f32>; 2]> = xs
        .iter()
        .map(|_| [vec![0.0; blocks * b], vec![0.0; blocks * b]])
        .collect();
    for k in 0..blocks {
        let ins: Vec<[&[f32]; 2]> = padded
            .iter()
            .map(|x| [&x[0][k * b..(k + 1) * b], &x[1][k * b..(k + 1) * b]])
            .collect();
        let mut os: Vec<[&mut [f32]; 2]> = outs
            .iter_mut()
            .map(|[l, r]| [&mut l[k * b..(k + 1) * b], &mut r[k * b..(k + 1) * b]])
            .collect();
        bank.process(&slots, &ins, &mut os).unwrap();
    }
    outs
}

/// Checks CPU twin (and the GPU when `gpu`) against the direct reference for `irs`
/// fed with `xs`, all slots in one call per block.
fn check(block: usize, irs: &[ImpulseResponse], xs: &[[Vec<f32>; 2]], gpu: bool) {
    let longest = irs.iter().map(|i| i.frames()).max().unwrap();
    let xlen = xs.iter().map(|x| x[0].len().max(x[1].len())).max().unwrap();
    let blocks = (xlen + longest).div_ceil(block);
    let refs: Vec<[Vec<f64>; 2]> = irs
        .iter()
        .zip(xs)
        .map(|(ir, x)| reference(ir, x, blocks * block))
        .collect();
    let mut banks: Vec<Box<dyn ConvolutionBank>> = vec![Box::new(CpuConvolutionBank::new(block))];
    if gpu {
        let Some(ctx) = test_context() else { return };
        banks.push(Box::new(GpuConvolutionBank::new(ctx, block).unwrap()));
    }
    for bank in &mut banks {
        for ir in irs {
            bank.add(ir).unwrap();
        }
        let outs = run(bank.as_mut(), xs, blocks);
        for (s, (o, r)) in outs.iter().zip(&refs).enumerate() {
            for c in 0..2 {
                let e = err_db(&o[c], &r[c]);
                assert!(
                    e < -90.0,
                    "{}: block {block}, slot {s} ({} ch, {} frames), out {c}: {e:.1} dB",
                    bank.backend_name(),
                    irs[s].channels.len(),
                    irs[s].frames()
                );
            }
        }
    }
}

fn stereo_noise(n: usize, seed: u64) -> [Vec<f32>; 2] {
    [noise(n, seed), noise(n, seed + 1)]
}

#[test]
fn raw_gpu_fft_matches_rustfft_up_to_the_adapter_limit() {
    let Some(ctx) = test_context() else { return };
    let max = ctx.max_fft_len();
    assert!(max >= 1 << 20, "adapter limit {max}");
    // Cap the largest case so the test stays fast on lavapipe (2^24 = 128 MiB there).
    let mut sizes = vec![2usize, 4, 8, 32, 128, 1024, 2048, 8192, 1 << 16, 1 << 20];
    sizes.push(max.min(1 << 24));
    for &n in &sizes {
        let batch = if n <= 4096 { 3 } else { 1 };
        let mut r = ChaCha8Rng::seed_from_u64(n as u64);
        let data: Vec<[f32; 2]> = (0..n * batch)
            .map(|_| [r.random_range(-1.0f32..1.0), r.random_range(-1.0f32..1.0)])
            .collect();
        let mut planner = rustfft::FftPlanner::<f64>::new();
        // The largest size runs one direction only, to keep the test fast on lavapipe.
        let dirs: &[bool] = if n == *sizes.last().unwrap() {
            &[true]
        } else {
            &[false, true]
        };
        for &inverse in dirs {
            let got = ctx.fft_batch(&data, n, inverse).unwrap();
            let fft = if inverse {
                planner.plan_fft_inverse(n)
            } else {
                planner.plan_fft_forward(n)
            };
            let mut want: Vec<Complex<f64>> = data
                .iter()
                .map(|v| Complex::new(v[0] as f64, v[1] as f64))
                .collect();
            for chunk in want.chunks_exact_mut(n) {
                fft.process(chunk);
            }
            let peak = want.iter().fold(0.0f64, |m, v| m.max(v.norm()));
            let err = got.iter().zip(&want).fold(0.0f64, |m, (g, w)| {
                m.max((Complex::new(g[0] as f64, g[1] as f64) - w).norm())
            });
            let db = 20.0 * (err / peak).log10();
            assert!(db < -100.0, "n = {n}, inverse = {inverse}: {db:.1} dB");
        }
    }
}

#[test]
fn short_irs_all_layouts_gpu_and_cpu_match_direct() {
    // 1 ms mono, odd-length stereo, true stereo; block 256.
    let irs = vec![
        ImpulseResponse::new(vec![room_ir(48, 1)], "1ms").unwrap(),
        ImpulseResponse::new(vec![room_ir(1001, 2), room_ir(999, 3)], "odd").unwrap(),
        ImpulseResponse::new(
            (0..4).map(|c| room_ir(777, 10 + c)).collect(),
            "true stereo",
        )
        .unwrap(),
    ];
    let xs = vec![
        stereo_noise(1000, 20),
        stereo_noise(1537, 22),
        stereo_noise(700, 24),
    ];
    check(256, &irs, &xs, true);
}

#[test]
fn several_block_sizes_gpu_and_cpu_match_direct() {
    for (block, ir_len) in [(512usize, 5000usize), (2048, 2047), (8192, 20001)] {
        let irs = vec![
            ImpulseResponse::new(vec![room_ir(ir_len, 30), room_ir(ir_len, 31)], "st").unwrap(),
            ImpulseResponse::new(
                (0..4).map(|c| room_ir(ir_len / 3 + 1, 40 + c)).collect(),
                "ts",
            )
            .unwrap(),
        ];
        let xs = vec![
            stereo_noise(block * 2 + 17, 50),
            stereo_noise(block + 3, 52),
        ];
        check(block, &irs, &xs, true);
    }
}

#[test]
fn engine_block_size_one_second_ir_gpu_and_cpu_match_direct() {
    // The engine's block (16384 frames, FFT 32768) with a 1 s stereo room.
    let irs =
        vec![ImpulseResponse::new(vec![room_ir(48000, 60), room_ir(48000, 61)], "1s").unwrap()];
    let xs = vec![[sparse(40000, 300, 62), sparse(40000, 300, 63)]];
    check(16384, &irs, &xs, true);
}

#[test]
fn ten_second_ir_on_the_cpu_twin_matches_direct() {
    let irs =
        vec![ImpulseResponse::new(vec![room_ir(480000, 70), room_ir(480001, 71)], "10s").unwrap()];
    let xs = vec![[sparse(30000, 100, 72), sparse(30000, 100, 73)]];
    check(16384, &irs, &xs, false);
}

#[test]
fn gpu_delay_line_split_into_chunks_matches_direct() {
    // A binding limit small enough that the FDL and IR spectra are split in chunks
    // of 2 partitions: exercises the chunk-to-chunk spectrum shift.
    let Some(_) = test_context() else { return };
    let ctx = GpuContext::new_blocking().unwrap();
    let block = 256;
    let stride = 320u64; // (256 + 1) rounded up to 64
    ctx.limit_binding_for_tests(2 * 4 * stride * 8);
    let ir =
        ImpulseResponse::new((0..4).map(|c| room_ir(2500, 80 + c)).collect(), "split").unwrap();
    let x = stereo_noise(3000, 85);
    let blocks = (3000 + 2500usize).div_ceil(block);
    let want = reference(&ir, &x, blocks * block);
    let mut bank = GpuConvolutionBank::new(ctx, block).unwrap();
    bank.add(&ir).unwrap();
    let out = run(&mut bank, &[x], blocks);
    for c in 0..2 {
        let e = err_db(&out[0][c], &want[c]);
        assert!(e < -90.0, "out {c}: {e:.1} dB");
    }
}

#[test]
fn gpu_silent_ir_yields_silence_and_slot_order_is_free() {
    let Some(ctx) = test_context() else { return };
    let mut bank = GpuConvolutionBank::new(ctx, 256).unwrap();
    let a = bank
        .add(&ImpulseResponse::new(vec![vec![0.0; 300]], "silent").unwrap())
        .unwrap();
    let b = bank
        .add(&ImpulseResponse::new(vec![vec![0.5]], "half").unwrap())
        .unwrap();
    let x = noise(256, 90);
    let (mut al, mut ar, mut bl, mut br) = (
        vec![1.0f32; 256],
        vec![1.0f32; 256],
        vec![0.0f32; 256],
        vec![0.0f32; 256],
    );
    // Listed in reverse order.
    bank.process(
        &[b, a],
        &[[&x, &x], [&x, &x]],
        &mut [[&mut bl, &mut br], [&mut al, &mut ar]],
    )
    .unwrap();
    assert!(al.iter().chain(&ar).all(|v| v.abs() < 1e-6));
    for i in 0..256 {
        assert!((bl[i] - 0.5 * x[i]).abs() < 1e-5 && (br[i] - 0.5 * x[i]).abs() < 1e-5);
    }
    assert!(bank.backend_name().starts_with("gpu ("));
}

#[test]
fn fir_band_split_gpu_and_cpu_reconstruct_and_match_direct() {
    let sr = 48000.0;
    let block = 1024;
    let ks = band_split_kernels(&[150.0, 1200.0, 7000.0], sr, 2047);
    let lat = 1023;
    let n = 6 * block;
    let x = stereo_noise(n, 100);
    let mut banks: Vec<Box<dyn FirBank>> = vec![cpu_fir_bank(ks.clone(), block).unwrap()];
    if let Some(ctx) = test_context() {
        banks.push(gpu_fir_bank(ctx, ks.clone(), block).unwrap());
    }
    for bank in &mut banks {
        assert_eq!(bank.latency(), lat);
        let mut bands = vec![[vec![0.0f32; n], vec![0.0f32; n]]; ks.len()];
        for k in 0..n / block {
            let mut os: Vec<[&mut [f32]; 2]> = bands
                .iter_mut()
                .map(|[l, r]| {
                    [
                        &mut l[k * block..(k + 1) * block],
                        &mut r[k * block..(k + 1) * block],
                    ]
                })
                .collect();
            bank.process(
                [
                    &x[0][k * block..(k + 1) * block],
                    &x[1][k * block..(k + 1) * block],
                ],
                &mut os,
            )
            .unwrap();
        }
        for c in 0..2 {
            // Sum of bands vs the delayed input.
            let sum: Vec<f32> = (0..n)
                .map(|i| bands.iter().map(|b| b[c][i]).sum())
                .collect();
            let want: Vec<f64> = (0..n)
                .map(|i| if i >= lat { x[c][i - lat] as f64 } else { 0.0 })
                .collect();
            let e = err_db(&sum, &want);
            assert!(
                e < -80.0,
                "{}: reconstruction ch {c}: {e:.1} dB",
                bank.backend_name()
            );
            // Each band vs a direct float64 convolution.
            for (k, kern) in ks.iter().enumerate() {
                let want = direct_convolve_f64(&f64s(&x[c]), &f64s(kern));
                let e = err_db(&bands[k][c], &want[..n]);
                assert!(
                    e < -90.0,
                    "{}: band {k} ch {c}: {e:.1} dB",
                    bank.backend_name()
                );
            }
        }
    }
}

#[test]
fn injected_device_loss_makes_process_fail_without_hanging() {
    let Some(_) = test_context() else { return };
    // A context of its own: the hook must not hit other tests' submissions.
    let ctx = GpuContext::new_blocking().unwrap();
    let mut bank = GpuConvolutionBank::new(ctx.clone(), 256).unwrap();
    bank.add(&ImpulseResponse::new(vec![room_ir(600, 110)], "ir").unwrap())
        .unwrap();
    let x = noise(256, 111);
    let (mut l, mut r) = (vec![0.0f32; 256], vec![0.0f32; 256]);
    bank.process(&[0], &[[&x, &x]], &mut [[&mut l, &mut r]])
        .unwrap();
    ctx.inject_failure_after(1);
    bank.process(&[0], &[[&x, &x]], &mut [[&mut l, &mut r]])
        .unwrap();
    let e = bank
        .process(&[0], &[[&x, &x]], &mut [[&mut l, &mut r]])
        .unwrap_err();
    assert!(e.to_string().contains("device lost"), "{e}");
    // The bank stays failed (the engine re-renders the job on the CPU).
    assert!(
        bank.process(&[0], &[[&x, &x]], &mut [[&mut l, &mut r]])
            .is_err()
    );

    let mut fir = gpu_fir_bank(
        ctx.clone(),
        band_split_kernels(&[1000.0], 48000.0, 255),
        256,
    )
    .unwrap();
    let (mut a, mut b, mut c, mut d) = (
        vec![0.0f32; 256],
        vec![0.0f32; 256],
        vec![0.0f32; 256],
        vec![0.0f32; 256],
    );
    ctx.inject_failure_after(0);
    assert!(
        fir.process([&x, &x], &mut [[&mut a, &mut b], [&mut c, &mut d]])
            .is_err()
    );
}

#[test]
fn bad_irs_give_clear_errors() {
    for (chans, what) in [
        (vec![], "0 channels"),
        (vec![vec![]], "empty"),
        (vec![vec![0.1, f32::NAN, 0.2]], "not finite"),
        (vec![vec![0.1]; 3], "3 channels"),
        (vec![vec![0.0f32; 60 * 384_000 + 1]], "60 s"),
    ] {
        let e = ImpulseResponse::new(chans, "hall.wav")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hall.wav") && e.contains(what), "{e}");
    }
}
