//! `kevent-cuse`: serves /dev/kevent (the 2006 kevent ioctl ABI).

use anyhow::Context;
use clap::{Parser, ValueEnum};
use kevent_cuse::daemon::{self, Choice, Options, ServeChoice};
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ServeArg {
    /// percpu on the FUSE file, single under CUSE.
    Auto,
    /// One reader thread that spins up to --spin-us before sleeping.
    Single,
    /// One pinned reader per CPU on cloned /dev/fuse fds (FUSE file only).
    Percpu,
    /// FUSE-over-io_uring, one pinned ring per CPU (FUSE file only; kernel
    /// 6.14+); falls back to percpu, saying why, where it cannot be used.
    Uring,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum UringParamArg {
    /// Switch /sys/module/fuse/parameters/enable_uring on for the mount if
    /// it is off, and put it back once the rings are registered.
    Switch,
    /// Never write it: with it off, `--serve uring` falls back to percpu.
    Keep,
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
    /// How requests are served.
    #[arg(long, value_enum, default_value = "auto")]
    serve: ServeArg,
    /// Microseconds a reader keeps polling for the next request before it
    /// sleeps (0: sleep at once).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    spin_us: u64,
    /// With --serve uring: whether the daemon may switch the fuse module
    /// parameter enable_uring on (it is global; it is put back right after
    /// the rings are registered).
    #[arg(long, value_enum, default_value = "switch")]
    uring_param: UringParamArg,
    /// With --serve uring: ring entries per CPU. A WAIT parked on the ring
    /// holds its entry, so this bounds the WAITs parked from one CPU before
    /// further requests from that CPU wait.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    uring_depth: u32,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let v = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode like 0666"))?;
    if v > 0o777 {
        return Err(format!("{s} has bits beyond 0777"));
    }
    Ok(v)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        serve: match cli.serve {
            ServeArg::Auto => ServeChoice::Auto,
            ServeArg::Single => ServeChoice::Single,
            ServeArg::Percpu => ServeChoice::Percpu,
            ServeArg::Uring => ServeChoice::Uring,
        },
        spin: std::time::Duration::from_micros(cli.spin_us),
        uring_switch: matches!(cli.uring_param, UringParamArg::Switch),
        uring_depth: cli.uring_depth,
    };
    daemon::run(opts).context("kevent-cuse cannot serve the device")
}
