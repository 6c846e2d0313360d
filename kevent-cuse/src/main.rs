//! `kevent-cuse`: serves /dev/kevent (the 2006 kevent ioctl ABI).

use anyhow::Context;
use clap::{Parser, ValueEnum};
use kevent_cuse::core::Limits;
use kevent_cuse::daemon::{self, Choice, Options};
use kevent_cuse::transport::access;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    /// CUSE when /dev/cuse opens (after trying `modprobe cuse`), else the FUSE file.
    Auto,
    /// A real character device through CUSE.
    Cuse,
    /// FUSE mounted on a regular file at --path.
    Fuse,
}

/// Serve the 2006 /dev/kevent ioctl ABI from userspace.
///
/// Runs in the foreground until SIGTERM or SIGINT, then removes the device.
/// Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// How to create the device.
    #[arg(long, value_enum, default_value = "auto")]
    transport: TransportArg,
    /// Device name: /dev/NAME under CUSE.
    #[arg(long, default_value = "kevent")]
    name: String,
    /// File to mount over with the FUSE transport [default: /dev/NAME].
    #[arg(long)]
    path: Option<PathBuf>,
    /// Permission bits of the device node, in octal.
    #[arg(long, default_value = "0666", value_parser = parse_mode)]
    mode: u32,
    /// Most kevents registered per queue (2006: 1023).
    #[arg(long, default_value_t = 1023, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_kevents: u32,
    /// Owner of the device node (user name or uid).
    #[arg(long, default_value = "0", value_parser = access::resolve_user)]
    owner: u32,
    /// Group of the device node (group name or gid).
    #[arg(long, default_value = "0", value_parser = access::resolve_group)]
    group: u32,
    /// Most queues (opens of the device) one non-root user may hold; 0: no limit.
    #[arg(long, default_value_t = Limits::DEFAULT_QUEUES)]
    max_queues_per_user: u32,
    /// Most kevents one non-root user may have registered; 0: no limit.
    #[arg(long, default_value_t = Limits::DEFAULT_KEVENTS)]
    max_kevents_per_user: u32,
    /// Most daemon descriptors held for one non-root user's kevents; 0:
    /// half of what the daemon's descriptor limit leaves for users.
    #[arg(long, default_value_t = Limits::DEFAULT_DESCRIPTORS)]
    max_descriptors_per_user: u32,
    /// Print the status of the daemon serving --path (or /dev/NAME) and
    /// exit: queues with their owners, kevents per type, ready and parked
    /// counts, the 2006 statistics, per-user usage (root only).
    #[arg(long)]
    status: bool,
}

/// `--status`: asks the running daemon.
fn print_status(cli: &Cli) -> std::process::ExitCode {
    let node = cli
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("/dev").join(&cli.name));
    let node = match (node.parent(), node.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or(node.clone()),
        _ => std::env::current_dir().map_or(node.clone(), |d| d.join(&node)),
    };
    match kevent_cuse::status::query(&node) {
        Ok(report) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match out.write_all(report.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(_) => std::process::ExitCode::FAILURE,
            }
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "kevent-cuse --status: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let v = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode like 0666"))?;
    if v > 0o777 {
        return Err(format!("{s} has bits beyond 0777"));
    }
    Ok(v)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.status {
        return print_status(&cli);
    }
    kevent_cuse::logging::init();
    let opts = Options {
        transport: match cli.transport {
            TransportArg::Auto => Choice::Auto,
            TransportArg::Cuse => Choice::Cuse,
            TransportArg::Fuse => Choice::Fuse,
        },
        name: cli.name,
        path: cli.path,
        mode: cli.mode,
        max_kevents: cli.max_kevents,
        owner: cli.owner,
        group: cli.group,
        user_queues: cli.max_queues_per_user,
        user_kevents: cli.max_kevents_per_user,
        user_descriptors: cli.max_descriptors_per_user,
    };
    let r = daemon::run(opts).context("kevent-cuse cannot serve the device");
    let code = match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    kevent_cuse::logging::flush();
    code
}
