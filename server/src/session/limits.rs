//! Request limits: every size that comes from a request is held against one of these
//! before anything is allocated for it.
//!
//! The defaults suit a shared studio box with a few GB of RAM per job; a server sets
//! its own (config file, per token). Validation ([`super::validate`]) checks what the
//! session document alone decides (counts, names, offsets); the engine checks what
//! needs the stems' headers (mix length, stem and IR frames, memory) before it
//! allocates, and the decoder checks frame counts again while decoding, never
//! trusting a header.

/// Limits on one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Frames of the mix timeline (duration × session rate). Default 2^28
    /// (≈ 93 min at 48 kHz, 11.6 min at 384 kHz): 2 GiB of stereo f32 mix.
    pub max_mix_frames: u64,
    /// Frames of one stem after resampling to the session rate (default = max_mix_frames).
    pub max_stem_frames: u64,
    /// Frames of one impulse response after resampling (default 2^22: 87 s at 48 kHz).
    pub max_ir_frames: u64,
    /// Tracks per session.
    pub max_tracks: usize,
    /// Buses per session.
    pub max_buses: usize,
    /// Distinct impulse-response files per session.
    pub max_irs: usize,
    /// Clips per session (all tracks).
    pub max_clips: usize,
    /// Inserts on one strip.
    pub max_inserts: usize,
    /// Deliverables (outputs) per session.
    pub max_deliverables: usize,
    /// Automation points per session (all lanes).
    pub max_automation_points: usize,
    /// Bytes of the session document.
    pub max_session_bytes: usize,
    /// Bytes of any name (track, bus, deliverable, tag, file path).
    pub max_name_bytes: usize,
    /// Estimated working memory of one job (bytes); the engine refuses a job whose
    /// estimate exceeds it before allocating.
    pub max_job_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_mix_frames: 1 << 28,
            max_stem_frames: 1 << 28,
            max_ir_frames: 1 << 22,
            max_tracks: 1024,
            max_buses: 256,
            max_irs: 32,
            max_clips: 100_000,
            max_inserts: 64,
            max_deliverables: 64,
            max_automation_points: 1_000_000,
            max_session_bytes: 4 << 20,
            max_name_bytes: 1024,
            max_job_memory: 8 << 30,
        }
    }
}
