//! The long fuzz run (`scripts/fuzz`): rounds of the randomized decoder and
//! core checks of `kevent_cuse::fuzz`, a new seed per round, until the
//! time is up. A failure prints the seed; `--seed N --rounds 1` replays it.

use anyhow::{bail, Result};
use clap::Parser;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(about = "Randomized checks of the wire decoders and the core")]
struct Args {
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// First seed (default: from the clock); round i uses seed + i.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many rounds.
    #[arg(long)]
    rounds: Option<u64>,
    /// Operations per core round.
    #[arg(long, default_value_t = 5_000)]
    steps: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let first = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut round = 0u64;
    while Instant::now() < end && args.rounds.is_none_or(|r| round < r) {
        let seed = first.wrapping_add(round);
        let ok = std::panic::catch_unwind(|| {
            kevent_cuse::fuzz::decoders(seed, 2_000);
            kevent_cuse::fuzz::core_ops(seed, args.steps);
        });
        if ok.is_err() {
            bail!("round {round} failed: replay with --seed {seed} --rounds 1");
        }
        round += 1;
    }
    println!("fuzz: {round} rounds from seed {first}, no failure");
    Ok(())
}
