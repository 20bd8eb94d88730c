//! The one GPU context tests share, and the loud skip when there is no adapter.

use std::sync::{Arc, OnceLock};

use super::GpuContext;

/// For tests: Some(ctx) if an adapter exists (one shared context per process); None
/// prints a loud "SKIP: no GPU adapter" to stderr, and panics (fails the test) instead
/// when the environment has BOUNCE_REQUIRE_GPU=1.
pub fn test_context() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<std::result::Result<Arc<GpuContext>, String>> = OnceLock::new();
    match CTX.get_or_init(|| GpuContext::new_blocking().map_err(|e| e.to_string())) {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) => {
            if std::env::var("BOUNCE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("BOUNCE_REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            eprintln!("SKIP: no GPU adapter ({e}); install mesa-vulkan-drivers for lavapipe");
            None
        }
    }
}
