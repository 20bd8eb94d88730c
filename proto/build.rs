//! Compiles proto/bounce.proto in pure Rust (protox), so no system protoc is needed.
use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=bounce.proto");
    let fds = protox::compile(["bounce.proto"], ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection needs the encoded descriptor set; compile_fds() does not write it.
    std::fs::write(out.join("bounce_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
