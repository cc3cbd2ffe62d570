//! `piasd`: the PIAS anycast proxy daemon.
//!
//! `piasd --config FILE` runs until SIGINT or SIGTERM; `piasd --check-config
//! FILE` validates a config and exits. Exit status: 0 after a clean run or a
//! valid config; 1 when start-up failed or shutdown found leaked mbufs; 2 for
//! a config error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use piasd::config::Config;

#[derive(Parser, Debug)]
#[command(name = "piasd", version, about = "PIAS anycast proxy daemon (DPDK)")]
struct Args {
    /// Run with this YAML config.
    #[arg(long, value_name = "FILE", conflicts_with = "check_config", required_unless_present = "check_config")]
    config: Option<PathBuf>,
    /// Validate this YAML config and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp_millis().init();
    let args = Args::parse();
    if let Some(path) = args.check_config {
        return match Config::load(&path) {
            Ok(c) => {
                println!(
                    "{}: ok ({} port(s), {} worker(s), anycast {})",
                    path.display(),
                    c.ports.len(),
                    c.workers,
                    c.anycast.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("piasd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(path) = args.config else {
        eprintln!("piasd: --config FILE or --check-config FILE is required");
        return ExitCode::from(2);
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("piasd: {e}");
            return ExitCode::from(2);
        }
    };
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, term.clone()) {
            eprintln!("piasd: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match piasd::runtime::run(cfg, term) {
        Ok(()) => {
            log::info!("clean exit");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            eprintln!("piasd: {e}");
            ExitCode::FAILURE
        }
    }
}
