//! `kevent-ctl`: drive /dev/kevent from the shell.
//!
//! One process holds one open (one queue) and runs a small script, one
//! command per line (from `-c` arguments, else standard input):
//!
//! ```text
//! add timer id=100 user=1 flags=oneshot
//! wait num=4 timeout=2000
//! remove timer id=100 user=1
//! modify timer id=100 user=1 event=1 flags=0
//! ioctl 0x1234
//! sleep 50
//! ```
//!
//! Each result is printed as `CMD ret=N` or `CMD error=ERRNO (text)`,
//! followed by one `  ev ...` line per ukevent returned or written back.

use anyhow::{bail, Context, Result};
use clap::Parser;
use kevent_client::*;
use std::io::BufRead;

/// Run kevent ioctls from a script, one command per line.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Commands: add|remove|modify TYPE [id=A[,B]] [event=BITS] [flags=oneshot|N] [user=A[,B]]; wait [num=N] [timeout=MS] [via=ctl|wait]; ioctl NUMBER; sleep MS.\nTYPE: socket inode timer poll naio aio or a number."
)]
struct Cli {
    /// The device.
    #[arg(long, short, default_value = "/dev/kevent", env = "KEVENT_DEVICE")]
    dev: String,
    /// Open with O_NONBLOCK.
    #[arg(long)]
    nonblock: bool,
    /// A command (repeatable); without any, commands are read from stdin.
    #[arg(short = 'c', long = "command")]
    commands: Vec<String>,
    /// Exit 1 at the first ioctl that fails.
    #[arg(long)]
    strict: bool,
}

fn parse_num(s: &str) -> Result<u32> {
    let v = if let Some(h) = s.strip_prefix("0x") {
        u32::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    v.with_context(|| format!("{s:?} is not a number"))
}

fn parse_pair(s: &str) -> Result<[u32; 2]> {
    let mut it = s.splitn(2, ',');
    let a = parse_num(it.next().unwrap_or("0"))?;
    let b = it.next().map_or(Ok(0), parse_num)?;
    Ok([a, b])
}

fn type_number(s: &str) -> Result<u32> {
    Ok(match s {
        "socket" => KEVENT_SOCKET,
        "inode" => KEVENT_INODE,
        "timer" => KEVENT_TIMER,
        "poll" => KEVENT_POLL,
        "naio" => KEVENT_NAIO,
        "aio" => KEVENT_AIO,
        n => parse_num(n).with_context(|| format!("unknown event type {n:?}"))?,
    })
}

fn type_name(t: u32) -> String {
    ["socket", "inode", "timer", "poll", "naio", "aio"]
        .get(t as usize)
        .map_or_else(|| t.to_string(), |s| s.to_string())
}

fn parse_ukevent(words: &[&str]) -> Result<Ukevent> {
    let Some((ty, rest)) = words.split_first() else {
        bail!("missing event type");
    };
    let mut uk = Ukevent {
        type_: type_number(ty)?,
        event: KEVENT_MASK_ALL,
        ..Default::default()
    };
    if uk.type_ == KEVENT_TIMER {
        uk.event = KEVENT_TIMER_FIRED;
    }
    for w in rest {
        let (k, v) = w
            .split_once('=')
            .with_context(|| format!("{w:?}: expected key=value"))?;
        match k {
            "id" => uk.id = parse_pair(v)?,
            "event" => uk.event = parse_num(v)?,
            "flags" => {
                uk.req_flags = if v == "oneshot" {
                    KEVENT_REQ_ONESHOT
                } else {
                    parse_num(v)?
                }
            }
            "user" => uk.user = parse_pair(v)?,
            _ => bail!("unknown field {k:?} (id, event, flags, user)"),
        }
    }
    Ok(uk)
}

fn flags_name(f: u32) -> String {
    let mut v = Vec::new();
    if f & KEVENT_RET_BROKEN != 0 {
        v.push("BROKEN".to_string());
    }
    if f & KEVENT_RET_DONE != 0 {
        v.push("DONE".to_string());
    }
    let rest = f & !(KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    if rest != 0 {
        v.push(format!("{rest:#x}"));
    }
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

fn print_ev(u: &Ukevent) {
    println!(
        "  ev id={},{} type={} event={:#x} req={:#x} ret={} data={},{} user={},{}",
        u.id[0],
        u.id[1],
        type_name(u.type_),
        u.event,
        u.req_flags,
        flags_name(u.ret_flags),
        u.ret_data[0],
        u.ret_data[1],
        u.user[0],
        u.user[1]
    );
}

fn errno_line(cmd: &str, e: &Error) -> String {
    let code = match e {
        Error::Ioctl { source, .. } | Error::Open { source, .. } => {
            source.raw_os_error().unwrap_or(0)
        }
    };
    let name = match code {
        libc::EINVAL => "EINVAL",
        libc::ENODEV => "ENODEV",
        libc::ENFILE => "ENFILE",
        libc::E2BIG => "E2BIG",
        libc::EPERM => "EPERM",
        libc::EFAULT => "EFAULT",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTTY => "ENOTTY",
        _ => "",
    };
    format!("{cmd} error={name} errno={code} ({e})")
}

fn run_line(dev: &Device, line: &str) -> Result<bool> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((cmd, rest)) = words.split_first() else {
        return Ok(true);
    };
    if cmd.starts_with('#') {
        return Ok(true);
    }
    let outcome = match *cmd {
        "add" => dev.add(&mut [parse_ukevent(rest)?]).map(|a| {
            println!("add ret={} num={}", a.ret, a.written_back.len());
            a.written_back.iter().for_each(print_ev);
        }),
        "remove" | "modify" => {
            let uk = parse_ukevent(rest)?;
            let r = if *cmd == "remove" {
                dev.remove(&[uk])
            } else {
                dev.modify(&[uk])
            };
            r.map(|evs| {
                println!("{cmd} ret=0");
                evs.iter().for_each(print_ev);
            })
        }
        "wait" => {
            let (mut num, mut timeout) = (16, 0);
            for w in rest {
                match w.split_once('=') {
                    Some(("num", v)) => num = parse_num(v)?,
                    Some(("timeout", v)) => timeout = parse_num(v)?,
                    _ => bail!("wait takes num=N timeout=MS, not {w:?}"),
                }
            }
            dev.wait(num, timeout).map(|evs| {
                println!("wait ret={}", evs.len());
                evs.iter().for_each(print_ev);
            })
        }
        "ioctl" => {
            let nr = parse_num(rest.first().context("ioctl needs a number")?)?;
            let mut buf = [0u8; 12];
            match dev.raw_ioctl(nr, &mut buf) {
                Ok(r) => {
                    println!("ioctl ret={r}");
                    Ok(())
                }
                Err(source) => Err(Error::Ioctl {
                    op: "ioctl",
                    source,
                }),
            }
        }
        "sleep" => {
            let ms = parse_num(rest.first().context("sleep needs milliseconds")?)?;
            std::thread::sleep(std::time::Duration::from_millis(ms as u64));
            Ok(())
        }
        other => bail!("unknown command {other:?} (add, remove, modify, wait, ioctl, sleep)"),
    };
    match outcome {
        Ok(()) => Ok(true),
        Err(e) => {
            println!("{}", errno_line(cmd, &e));
            Ok(false)
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let dev = if cli.nonblock {
        Device::open_nonblocking(&cli.dev)
    } else {
        Device::open(&cli.dev)
    }?;
    let lines: Vec<String> = if cli.commands.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>()?
    } else {
        cli.commands.clone()
    };
    for (i, line) in lines.iter().enumerate() {
        let ok = run_line(&dev, line).with_context(|| format!("line {}: {line:?}", i + 1))?;
        if !ok && cli.strict {
            std::process::exit(1);
        }
    }
    Ok(())
}
