//! Mastering benchmark (issue 4): a generated 4-minute stereo mix mastered through a
//! `[master]` chain (EQ, 4-band multiband, width) to three deliverables (streaming
//! 48k/24 wav −14 LUFS, cd 44.1k/16 flac −14 LUFS, hires 96k/24 wav −16 LUFS),
//! then, when ffmpeg is on PATH, a comparable job by ffmpeg (equalizer, acompressor,
//! alimiter, loudnorm two-pass) timed in the same run. Every output is measured by
//! the same meter (`master::analyze`).
//!
//! Prints x-realtime per deliverable and for all three, and peak RSS (VmHWM).
//! `cargo bench --bench master` (BOUNCE_BENCH_SECONDS changes the length).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bounce_server::master::{MasterJob, QcReport, analyze, finish, master_deliverable, prepare};
use bounce_server::session::{
    Compressor, Deliverable, Detector, EqBand, EqType, Format, Master, Multiband, Variant,
};
use rand::{Rng, SeedableRng};

const RATE: u32 = 48_000;

fn main() {
    // RUST_LOG=bounce::master=debug prints each stage's time.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let seconds: f64 = std::env::var("BOUNCE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    eprintln!("generating a {seconds} s stereo mix ...");
    let mix = generate(seconds);
    let chain = chain();
    let deliverables = [
        deliverable("streaming", -14.0, 48000, 24, Format::Wav),
        deliverable("cd", -14.0, 44100, 16, Format::Flac),
        deliverable("hires", -16.0, 96000, 24, Format::Wav),
    ];
    let fir = |k: Vec<Vec<f32>>, b: usize| bounce_server::dsp::fir::cpu_fir_bank(k, b);
    let cancel = AtomicBool::new(false);
    // One deliverable, the whole path (chain, analyses, gain, limiter, dither, QC).
    let del = &deliverables[0];
    let job = MasterJob {
        mix: [&mix[0], &mix[1]],
        mix_rate: RATE,
        chain: Some(&chain),
        deliverable: del,
        fir: &fir,
        gain_override_db: None,
    };
    let t0 = Instant::now();
    let r = master_deliverable(&job, &d.join("one.wav"), &cancel).expect("master");
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "bounce  one deliverable ({} {}k/{}): {wall:.2} s, {:.1}x realtime; peak RSS so far {} MB | {}",
        del.name,
        del.sample_rate / 1000,
        del.bit_depth,
        seconds / wall,
        peak_rss_mb(),
        figures(&r)
    );

    // Three deliverables as a render makes them: the chain once, then each one with
    // its QC plot.
    let t_all = Instant::now();
    let prep =
        prepare([&mix[0], &mix[1]], RATE, Some(&chain), &fir, true, &cancel).expect("prepare");
    println!(
        "bounce  chain and analyses (once): {:.2} s",
        t_all.elapsed().as_secs_f64()
    );
    for del in &deliverables {
        let path = d.join(format!("{}.{}", del.name, del.format.ext()));
        let plot = d.join(format!("{}.png", del.name));
        let t0 = Instant::now();
        let r =
            finish(&prep, Some(&chain), del, None, &path, Some(&plot), &cancel).expect("master");
        let wall = t0.elapsed().as_secs_f64();
        println!(
            "bounce  {:<9} {}k/{}: {wall:.2} s | {}",
            del.name,
            del.sample_rate / 1000,
            del.bit_depth,
            figures(&r)
        );
    }
    let wall = t_all.elapsed().as_secs_f64();
    drop(prep);
    println!(
        "bounce  3 deliverables: {wall:.2} s, {:.1}x realtime; peak RSS {} MB (mix held in memory: {} MB)",
        seconds / wall,
        peak_rss_mb(),
        mix.len() * mix[0].len() * 4 / 1_000_000
    );

    if Command::new("ffmpeg").arg("-version").output().is_ok() {
        let input = d.join("mix.wav");
        let refs: Vec<&[f32]> = mix.iter().map(Vec::as_slice).collect();
        bounce_server::audio::encode::write_wav_f32(&input, &refs, RATE).expect("mix.wav");
        let out = d.join("ffmpeg.wav");
        let t0 = Instant::now();
        match ffmpeg_two_pass(&input, &out) {
            Ok(()) => {
                let fw = t0.elapsed().as_secs_f64();
                let b = bounce_server::audio::decode::read_all(&out, "ffmpeg.wav")
                    .expect("read ffmpeg output");
                let r = analyze(&b.channels, b.sample_rate, "ffmpeg.wav").expect("analyze");
                println!(
                    "ffmpeg  streaming (eq, acompressor, alimiter, loudnorm 2-pass): {fw:.2} s, {:.1}x realtime | {}",
                    seconds / fw,
                    figures(&r)
                );
            }
            Err(e) => println!("ffmpeg  failed: {e}"),
        }
    } else {
        println!("ffmpeg  not on PATH: skipped");
    }
}

fn figures(r: &QcReport) -> String {
    format!(
        "I {} LUFS, TP {} dBTP, LRA {} LU",
        r.integrated_lufs
            .map_or("null".into(), |v| format!("{v:.2}")),
        r.true_peak_dbtp
            .map_or("null".into(), |v| format!("{v:.2}")),
        r.lra_lu.map_or("null".into(), |v| format!("{v:.1}"))
    )
}

fn deliverable(name: &str, target: f64, rate: u32, bits: u32, format: Format) -> Deliverable {
    Deliverable {
        name: name.into(),
        target_lufs: Some(target),
        ceiling_dbtp: Some(-1.0),
        sample_rate: rate,
        bit_depth: bits,
        format,
        variant: Variant::Main,
        album_gain_db: None,
        noise_shaping: false,
    }
}

fn chain() -> Master {
    let band = |t: f64, a: f64, r: f64| Compressor {
        threshold_db: t,
        ratio: 2.0,
        attack_ms: a,
        release_ms: r,
        knee_db: 0.0,
        makeup_db: 0.0,
        detector: Detector::Peak,
        sidechain: None,
    };
    Master {
        eq: vec![
            EqBand {
                kind: EqType::Lowshelf,
                freq: 100.0,
                q: 0.707,
                gain_db: 1.0,
            },
            EqBand {
                kind: EqType::Peak,
                freq: 3000.0,
                q: 1.0,
                gain_db: -1.5,
            },
        ],
        multiband: Some(Multiband {
            crossovers_hz: vec![120.0, 1000.0, 6000.0],
            bands: vec![
                band(-20.0, 20.0, 200.0),
                band(-18.0, 10.0, 150.0),
                band(-18.0, 5.0, 100.0),
                band(-16.0, 2.0, 80.0),
            ],
        }),
        width: Some(1.1),
        limiter: None,
    }
}

/// Music-like material: drums, bass, chords and noise with sections.
fn generate(seconds: f64) -> Vec<Vec<f32>> {
    let n = (seconds * RATE as f64) as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let beat = RATE as usize / 2;
    let mut out = vec![vec![0f32; n]; 2];
    let mut lp = [0f64; 2];
    for i in 0..n {
        let t = i as f64 / RATE as f64;
        let tb = (i % beat) as f64 / RATE as f64;
        let kick = (-tb * 12.0).exp() * (2.0 * std::f64::consts::PI * 55.0 * tb).sin();
        let section = if ((t / 16.0) as usize).is_multiple_of(2) {
            0.5
        } else {
            1.0
        };
        let bass = 0.25
            * (2.0 * std::f64::consts::PI * [55.0, 73.4, 61.7, 82.4][(t / 2.0) as usize % 4] * t)
                .sin();
        let chord: f64 = [220.0, 277.2, 329.6]
            .iter()
            .map(|f| 0.06 * (2.0 * std::f64::consts::PI * f * t).sin())
            .sum();
        for (c, o) in out.iter_mut().enumerate() {
            let w: f64 = rng.random_range(-1.0..1.0);
            lp[c] = 0.9 * lp[c] + 0.1 * w;
            let hat = if (i / (beat / 2)) % 2 == 1 {
                (-tb * 40.0).exp() * (w - lp[c]) * 0.3
            } else {
                0.0
            };
            o[i] = (0.5 * kick + bass + section * (chord + 0.15 * lp[c]) + hat) as f32 * 0.4;
        }
    }
    out
}

fn ffmpeg_two_pass(input: &Path, out: &Path) -> Result<(), String> {
    let pre = "equalizer=f=100:t=q:w=0.707:g=1,equalizer=f=3000:t=q:w=1:g=-1.5,acompressor=threshold=-18dB:ratio=2:attack=10:release=150,alimiter=limit=0.891:level=false";
    let p1 = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(input)
        .args([
            "-af",
            &format!("{pre},loudnorm=I=-14:TP=-1:LRA=11:print_format=json"),
            "-f",
            "null",
            "-",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let log = String::from_utf8_lossy(&p1.stderr);
    let json_start = log.rfind('{').ok_or("no loudnorm json")?;
    let v: serde_json::Value =
        serde_json::from_str(&log[json_start..]).map_err(|e| e.to_string())?;
    let g = |k: &str| v[k].as_str().unwrap_or("0").to_string();
    let af = format!(
        "{pre},loudnorm=I=-14:TP=-1:LRA=11:measured_I={}:measured_TP={}:measured_LRA={}:measured_thresh={}:offset={}:linear=true,aresample=48000",
        g("input_i"),
        g("input_tp"),
        g("input_lra"),
        g("input_thresh"),
        g("target_offset")
    );
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(["-af", &af, "-c:a", "pcm_s24le"])
        .arg(out)
        .status()
        .map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("ffmpeg exit {st}"))
    }
}

/// Peak resident set (VmHWM) in MB.
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
