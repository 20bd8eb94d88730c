//! Render benchmark (issue 2): a generated 16-stem, 3-minute session — EQ and a
//! compressor on every track, a send into one reverb bus with a 3 s stereo IR —
//! rendered by the engine, then the same mix by an ffmpeg filter graph (equalizer +
//! acompressor per input, amix, afir) when ffmpeg is on PATH.
//!
//! Prints x-realtime, CPU seconds and peak RSS. `cargo bench --bench render`
//! (BOUNCE_BENCH_SECONDS shortens the song; BOUNCE_BENCH_BACKEND=cpu|gpu|auto).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bounce_server::engine::{self, BackendChoice, RenderOptions};
use bounce_server::session;
use rand::{Rng, SeedableRng};

const RATE: u32 = 48_000;
const STEMS: usize = 16;

fn main() {
    let seconds: f64 = std::env::var("BOUNCE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    eprintln!(
        "generating {STEMS} stems of {seconds} s in {} ...",
        d.display()
    );
    let session_path = generate(d, seconds);

    let backend = match std::env::var("BOUNCE_BENCH_BACKEND").as_deref() {
        Ok("gpu") => BackendChoice::Gpu,
        Ok("auto") => BackendChoice::Auto,
        _ => BackendChoice::Cpu,
    };
    let gpu = if backend == BackendChoice::Cpu {
        None
    } else {
        bounce_server::gpu::GpuContext::new_blocking().ok()
    };
    let opts = RenderOptions {
        backend,
        gpu,
        ..Default::default()
    };
    let session = session::ValidSession::new(
        session::load_session_file(&session_path).expect("session"),
        &session::Limits::default(),
    )
    .expect("valid session");
    let resolve = |s: &session::StemRef| -> bounce_server::Result<PathBuf> {
        Ok(s.path.clone().expect("path"))
    };
    let cancel = AtomicBool::new(false);
    let out = d.join("out");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    engine::render_session(&session, &resolve, &out, &opts, &|_, _| {}, &cancel).expect("render");
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "bounce  {STEMS} stems x {seconds:.0} s, backend {backend:?}: {wall:.2} s wall, {:.1}x realtime, {cpu:.2} s CPU, peak RSS {} MB",
        seconds / wall,
        peak_rss_mb()
    );

    if Command::new("ffmpeg").arg("-version").output().is_ok() {
        let t0 = Instant::now();
        let status = ffmpeg(d, &out.join("ffmpeg.wav"));
        let fw = t0.elapsed().as_secs_f64();
        match status {
            Ok(()) => println!(
                "ffmpeg  same graph (equalizer+acompressor per input, amix, afir): {fw:.2} s wall, {:.1}x realtime; bounce is {:.1}x faster",
                seconds / fw,
                fw / wall
            ),
            Err(e) => println!("ffmpeg  failed: {e}"),
        }
    } else {
        println!("ffmpeg  not on PATH: skipped");
    }
}

fn generate(d: &Path, seconds: f64) -> PathBuf {
    let n = (seconds * RATE as f64) as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut toml =
        String::from("[session]\nname = \"bench\"\nsample_rate = 48000\ntail_s = 3.0\n\n");
    for k in 0..STEMS {
        let channels = if k % 2 == 0 { 1 } else { 2 };
        let path = d.join(format!("stem{k:02}.wav"));
        let spec = hound::WavSpec {
            channels,
            sample_rate: RATE,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("wav");
        let f = 55.0 * (1.0 + k as f64);
        let mut lp = 0.0f64;
        for i in 0..n {
            // A tone with a decaying envelope every half second plus filtered noise.
            let t = i as f64 / RATE as f64;
            let env = (-(t % 0.5) * 6.0).exp();
            lp = 0.9 * lp + 0.1 * rng.random_range(-1.0..1.0);
            let v = 0.3 * env * (2.0 * std::f64::consts::PI * f * t).sin() + 0.1 * lp;
            for _ in 0..channels {
                w.write_sample((v * 8_388_607.0) as i32).expect("write");
            }
        }
        w.finalize().expect("finalize");
        toml.push_str(&format!(
            "[[track]]\nname = \"T{k}\"\nfile = \"stem{k:02}.wav\"\ngain_db = -12.0\npan = {:.2}\n\
             eq = [ {{ type = \"highpass\", freq = 40.0 }}, {{ type = \"peak\", freq = 2500.0, gain_db = 2.0, q = 1.0 }}, {{ type = \"highshelf\", freq = 9000.0, gain_db = -1.0 }} ]\n\
             compressor = {{ threshold_db = -24.0, ratio = 4.0, attack_ms = 10.0, release_ms = 100.0 }}\n\
             sends = [ {{ bus = \"Hall\", level_db = -12.0 }} ]\n\n",
            (k as f64 / (STEMS - 1) as f64) * 1.6 - 0.8
        ));
    }
    // A 3 s stereo hall IR.
    let ir_n = 3 * RATE as usize;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(d.join("hall.wav"), spec).expect("ir");
    for i in 0..ir_n {
        let env = (-(i as f64) / (0.4 * RATE as f64)).exp();
        for _ in 0..2 {
            w.write_sample((0.05 * env * rng.random_range(-1.0..1.0)) as f32)
                .expect("write");
        }
    }
    w.finalize().expect("finalize");
    toml.push_str("[[bus]]\nname = \"Hall\"\nreverb = { ir = \"hall.wav\" }\n");
    let p = d.join("bench.toml");
    std::fs::write(&p, toml).expect("session");
    p
}

fn ffmpeg(d: &Path, out: &Path) -> Result<(), String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-y"]);
    for k in 0..STEMS {
        cmd.arg("-i").arg(d.join(format!("stem{k:02}.wav")));
    }
    cmd.arg("-i").arg(d.join("hall.wav"));
    let mut graph = String::new();
    for k in 0..STEMS {
        graph.push_str(&format!(
            "[{k}:a]aformat=channel_layouts=stereo,volume=-12dB,highpass=f=40,equalizer=f=2500:t=q:w=1:g=2,highshelf=f=9000:g=-1,acompressor=threshold=-24dB:ratio=4:attack=10:release=100[t{k}];"
        ));
    }
    for k in 0..STEMS {
        graph.push_str(&format!("[t{k}]"));
    }
    graph.push_str(&format!(
        "amix=inputs={STEMS}:normalize=0,asplit[dry][send];[send]volume=-12dB[s];[s][{STEMS}:a]afir[wet];[dry][wet]amix=inputs=2:normalize=0[out]"
    ));
    cmd.args([
        "-filter_complex",
        &graph,
        "-map",
        "[out]",
        "-c:a",
        "pcm_f32le",
    ])
    .arg(out);
    let o = cmd.output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// User + system CPU seconds of this process (children excluded).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set (VmHWM) in MB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
