//! `bounce`: the Bounce command line. Parsing and the exit code live here; the
//! work is in [`bounce_client::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("bounce: internal error{at}: {}", msg.replace('\n', " "));
    }));
    bounce_server::service::prepare_process_env();
    let cli = bounce_client::Cli::parse();
    match bounce_client::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bounce: {}", bounce_client::error_line(&err));
            ExitCode::FAILURE
        }
    }
}
