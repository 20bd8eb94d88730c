//! The command line, exactly as CONTRACT.md "The command line" writes it: parsing
//! only, in one place. Commands live in [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Bounce: mix and master sessions on a render server (or an embedded one).
#[derive(Debug, Parser)]
#[command(name = "bounce", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Render server, `http://HOST:PORT` or `https://HOST:PORT`; without it an
    /// embedded server on loopback runs for this one command.
    #[arg(long, global = true, env = "BOUNCE_SERVER")]
    pub server: Option<String>,
    /// Token for a server that asks for one.
    #[arg(long, global = true, env = "BOUNCE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Backend of the embedded server (a remote server chooses its own).
    #[arg(long, global = true, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Machine-readable output on stdout (JSON), no progress bar.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A hardware GPU when there is one, else the CPU.
    Auto,
    /// The GPU (software adapters included); an error if there is none.
    Gpu,
    /// The CPU.
    Cpu,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a session: DIR/mix.wav, one file per deliverable, DIR/report.json.
    Render {
        /// The session file (TOML), or a DAWproject file (.dawproject).
        session: PathBuf,
        /// Output folder (created if absent).
        #[arg(long)]
        out: PathBuf,
        /// DAWproject: the session rate (default: the highest rate of its audio files).
        #[arg(long)]
        sample_rate: Option<u32>,
        /// DAWproject: make the first import warning an error.
        #[arg(long)]
        strict: bool,
    },
    /// Import a DAWproject file: DIR/session.toml, its audio under DIR/audio/, DIR/import.json.
    Import {
        /// The DAWproject file (.dawproject).
        project: PathBuf,
        /// Output folder (created if absent).
        #[arg(long)]
        out: PathBuf,
        /// The session rate (default: the highest rate of its audio files).
        #[arg(long)]
        sample_rate: Option<u32>,
        /// Make the first import warning an error (nothing is written).
        #[arg(long)]
        strict: bool,
    },
    /// Master one audio file: gain to a loudness target, true-peak limiter.
    Master {
        /// The audio file to master.
        input: PathBuf,
        /// The mastered file (.wav or .flac).
        #[arg(long)]
        out: PathBuf,
        /// Integrated loudness target (LUFS).
        #[arg(long, default_value_t = -14.0, allow_negative_numbers = true)]
        target_lufs: f64,
        /// True-peak ceiling (dBTP).
        #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
        ceiling_dbtp: f64,
        /// 16 or 24 (integer PCM with TPDF dither) or 32 (float).
        #[arg(long, default_value_t = 24)]
        bit_depth: u32,
        /// Output sample rate (default: the input's).
        #[arg(long)]
        sample_rate: Option<u32>,
    },
    /// Measure an audio file: loudness, true peak, LRA (runs locally).
    Analyze {
        /// The audio file.
        audio: PathBuf,
    },
    /// Write a small synthesised song into DIR and render it there.
    Demo {
        /// Folder for the song and its renders.
        #[arg(long)]
        out: PathBuf,
    },
    /// Render an album: every song, the album's deliverables, one loudness rule.
    Album {
        /// The album file (TOML).
        album: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Follow a job again (its events so far, then new ones) and fetch its files.
    Attach {
        /// Job id (from `render --json` or `jobs`).
        job: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        job: String,
    },
    /// List the project's jobs (every page).
    Jobs {
        /// Jobs asked for per page (0: the server's default).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
    },
    /// Delete a finished job and its renders from the server.
    Delete {
        /// Job id.
        job: String,
    },
}
