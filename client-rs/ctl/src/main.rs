//! `kevent-ctl`: drive /dev/kevent from the shell, a script or a coprocess.
//!
//! One process holds one open (one queue) and runs commands, one per line,
//! from `-c` arguments or else from standard input; each line runs as soon
//! as it is read, and its result is printed (and flushed) before the next
//! line is read. The grammar is in `AFTER_HELP` below (printed by --help)
//! and in kevent-ctl(1).

mod json;

use anyhow::Result;
use clap::Parser;
use kevent_client::*;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

const AFTER_HELP: &str = "\
Commands (one per line; blank lines and lines starting with # are skipped):
  add SPEC [+ SPEC]...       ADD every SPEC in one ioctl
  remove SPEC [+ SPEC]...    REMOVE by key (id, user)
  modify SPEC [+ SPEC]...    MODIFY event mask and flags by key
  wait [num=N] [timeout=MS] [via=wait|ctl]
                             WAIT for up to N events (default 16, timeout 0:
                             at least one or 1 s); via=ctl uses KEVENT_USER_CTL
                             with cmd WAIT instead of KEVENT_USER_WAIT
  expect TYPE [id=A[,B]] [event=NAMES] [user=A[,B]] [ret=NAMES] [timeout=MS]
                             WAIT until an event of TYPE matching the given
                             fields arrives (default timeout 5000 ms); other
                             events are printed as skipped; exit 3 on timeout
  ioctl NUMBER               a raw ioctl with an empty 12-byte header
  sleep MS                   pause
SPEC: TYPE [id=A[,B]] [event=NAMES] [flags=NAMES] [user=A[,B]] [data=A[,B]]
  TYPE   socket inode timer poll naio aio, or a number
  id     id.raw[0],id.raw[1] (a descriptor, or a TIMER period in ms)
  event  names joined by | (socket/naio: recv accept send; inode: create
         remove; timer: fired; poll: in pri out err hup nval rdnorm rdband
         wrnorm wrband msg remove, with or without a poll prefix; aio: bio),
         or a number, or all; default: fired for timer, all otherwise
  flags  req_flags: oneshot, or a number
  user   user[0],user[1] (part of the REMOVE/MODIFY key)
  data   ret_data[0],ret_data[1] (AIO: ret_data[0] is the socket)
  ret    (expect) ret_flags names that must be set: broken done
Numbers are decimal or 0x hex.
Exit status: 0 all ran; 1 an ioctl failed (unless --errors-ok); 2 a
malformed line or bad usage; 3 expect timed out (kevent-ctl stops there).";

/// Run kevent ioctls on one queue, one command per line.
#[derive(Debug, Parser)]
#[command(version, after_help = AFTER_HELP)]
struct Cli {
    /// The device.
    #[arg(long, short, default_value = "/dev/kevent", env = "KEVENT_DEVICE")]
    dev: String,
    /// Open with O_NONBLOCK (WAIT never sleeps).
    #[arg(long)]
    nonblock: bool,
    /// A command (repeatable); without any, commands are read from stdin.
    #[arg(short = 'c', long = "command")]
    commands: Vec<String>,
    /// One JSON object per result, on one line.
    #[arg(long)]
    json: bool,
    /// Stop at the first ioctl that fails (exit 1).
    #[arg(long, alias = "strict")]
    stop_on_error: bool,
    /// Failing ioctls do not make the exit status non-zero.
    #[arg(long, conflicts_with = "stop_on_error")]
    errors_ok: bool,
}

/// What one line did.
enum Status {
    Ok,
    IoctlFailed,
    ExpectTimeout,
}

/// A malformed line.
struct ParseError(String);

type Parsed<T> = std::result::Result<T, ParseError>;

macro_rules! bad {
    ($($t:tt)*) => { return Err(ParseError(format!($($t)*))) };
}

fn num(s: &str) -> Parsed<u32> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    v.map_err(|_| ParseError(format!("{s:?} is not a number")))
}

fn pair(s: &str) -> Parsed<[u32; 2]> {
    let (a, b) = s.split_once(',').unwrap_or((s, "0"));
    Ok([num(a)?, num(b)?])
}

fn type_number(s: &str) -> Parsed<u32> {
    match s.parse::<EventType>() {
        Ok(t) => Ok(t.raw()),
        Err(e) => num(s).map_err(|_| ParseError(e)),
    }
}

fn req_flags(s: &str) -> Parsed<u32> {
    let mut f = 0;
    for w in s.split('|') {
        f |= if w.eq_ignore_ascii_case("oneshot") {
            KEVENT_REQ_ONESHOT
        } else {
            num(w).map_err(|_| ParseError(format!("flags: {w:?} is not oneshot or a number")))?
        };
    }
    Ok(f)
}

fn ret_flags(s: &str) -> Parsed<u32> {
    let mut f = 0;
    for w in s.split('|') {
        f |= match w.to_ascii_lowercase().as_str() {
            "broken" => KEVENT_RET_BROKEN,
            "done" => KEVENT_RET_DONE,
            _ => num(w)
                .map_err(|_| ParseError(format!("ret: {w:?} is not broken, done or a number")))?,
        };
    }
    Ok(f)
}

fn events(ty: u32, s: &str) -> Parsed<u32> {
    match EventType::from_raw(ty) {
        Some(t) => t.parse_events(s).map_err(ParseError),
        None => num(s),
    }
}

/// key=value words, each key at most once, only from `allowed`.
fn fields<'a>(words: &[&'a str], allowed: &[&str]) -> Parsed<Vec<(&'a str, &'a str)>> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            bad!("{w:?}: expected key=value ({})", allowed.join(", "))
        };
        if !allowed.contains(&k) {
            bad!("unknown field {k:?} (expected {})", allowed.join(", "))
        }
        if v.is_empty() {
            bad!("{k}= needs a value")
        }
        if out.iter().any(|(o, _)| *o == k) {
            bad!("{k}= given twice")
        }
        out.push((k, v));
    }
    Ok(out)
}

fn parse_spec(words: &[&str]) -> Parsed<Ukevent> {
    let Some((ty, rest)) = words.split_first() else {
        bad!("missing event type (socket, inode, timer, poll, naio, aio)")
    };
    let type_ = type_number(ty)?;
    let mut uk = Ukevent {
        type_,
        event: if type_ == KEVENT_TIMER {
            KEVENT_TIMER_FIRED
        } else {
            KEVENT_MASK_ALL
        },
        ..Default::default()
    };
    for (k, v) in fields(rest, &["id", "event", "flags", "user", "data"])? {
        match k {
            "id" => uk.id = pair(v)?,
            "event" => uk.event = events(type_, v)?,
            "flags" => uk.req_flags = req_flags(v)?,
            "user" => uk.user = pair(v)?,
            _ => uk.ret_data = pair(v)?,
        }
    }
    Ok(uk)
}

fn parse_specs(words: &[&str]) -> Parsed<Vec<Ukevent>> {
    if words.is_empty() {
        bad!("missing event type (socket, inode, timer, poll, naio, aio)")
    }
    words.split(|w| *w == "+").map(parse_spec).collect()
}

/// What `expect` looks for.
struct Expect {
    type_: u32,
    id: Option<[u32; 2]>,
    event: Option<u32>,
    user: Option<[u32; 2]>,
    ret: u32,
    timeout_ms: u32,
}

impl Expect {
    fn parse(words: &[&str]) -> Parsed<Expect> {
        let Some((ty, rest)) = words.split_first() else {
            bad!("expect needs an event type")
        };
        let type_ = type_number(ty)?;
        let mut e = Expect {
            type_,
            id: None,
            event: None,
            user: None,
            ret: 0,
            timeout_ms: 5000,
        };
        for (k, v) in fields(rest, &["id", "event", "user", "ret", "timeout"])? {
            match k {
                "id" => e.id = Some(pair(v)?),
                "event" => e.event = Some(events(type_, v)?),
                "user" => e.user = Some(pair(v)?),
                "ret" => e.ret = ret_flags(v)?,
                _ => e.timeout_ms = num(v)?,
            }
        }
        Ok(e)
    }

    fn matches(&self, u: &Ukevent) -> bool {
        u.type_ == self.type_
            && !matches!(self.id, Some(id) if id != u.id)
            && !matches!(self.user, Some(user) if user != u.user)
            && !matches!(self.event, Some(ev) if ev & u.event == 0)
            && u.ret_flags & self.ret == self.ret
    }
}

/// Prints results as text or JSON.
struct Out {
    json: bool,
}

fn ev_text(u: &Ukevent, extra: &str) -> String {
    let ty = EventType::from_raw(u.type_).map_or_else(|| u.type_.to_string(), |t| t.name().into());
    let mut ret = Vec::new();
    if u.ret_flags & KEVENT_RET_BROKEN != 0 {
        ret.push("BROKEN".to_string());
    }
    if u.ret_flags & KEVENT_RET_DONE != 0 {
        ret.push("DONE".to_string());
    }
    let rest = u.ret_flags & !(KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    if rest != 0 {
        ret.push(format!("{rest:#x}"));
    }
    let ret = if ret.is_empty() {
        "0".into()
    } else {
        ret.join("|")
    };
    format!(
        "  {extra}ev id={},{} type={ty} event={:#x} req={:#x} ret={ret} data={},{} user={},{}",
        u.id[0], u.id[1], u.event, u.req_flags, u.ret_data[0], u.ret_data[1], u.user[0], u.user[1]
    )
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(0))
}

impl Out {
    fn line(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }

    fn error(&self, cmd: &str, op: &str, e: &std::io::Error) {
        let errno = errno_of(e);
        if self.json {
            self.line(&json::object(&[
                ("cmd", json::str(cmd)),
                ("ok", "false".into()),
                ("errno", errno.0.to_string()),
                ("error", json::str(&errno.to_string())),
                ("message", json::str(&errno.description())),
            ]));
        } else {
            self.line(&format!(
                "{cmd} error={} errno={} ({op}: {e})",
                errno.name().unwrap_or(""),
                errno.0
            ));
        }
    }

    fn parse_error(&self, lineno: usize, cmd: &str, msg: &str) {
        if self.json {
            self.line(&json::object(&[
                ("cmd", json::str(cmd)),
                ("ok", "false".into()),
                ("error", json::str("parse")),
                ("line", lineno.to_string()),
                ("message", json::str(msg)),
            ]));
        } else {
            self.line(&format!("parse error line={lineno}: {msg}"));
        }
    }
}

fn run_line(dev: &Device, out: &Out, lineno: usize, line: &str) -> Parsed<Status> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((cmd, rest)) = words.split_first() else {
        return Ok(Status::Ok);
    };
    match *cmd {
        "add" => {
            let mut evs = parse_specs(rest)?;
            Ok(run_add(dev, out, &mut evs))
        }
        "remove" | "modify" => {
            let mut evs = parse_specs(rest)?;
            let (op, r) = if *cmd == "remove" {
                ("REMOVE", dev.remove(&mut evs))
            } else {
                ("MODIFY", dev.modify(&mut evs))
            };
            match r {
                Ok(()) => {
                    if out.json {
                        out.line(&json::object(&[
                            ("cmd", json::str(cmd)),
                            ("ok", "true".into()),
                            ("ret", "0".into()),
                            ("events", json::events(&evs, None)),
                        ]));
                    } else {
                        out.line(&format!("{cmd} ret=0"));
                        evs.iter().for_each(|u| out.line(&ev_text(u, "")));
                    }
                    Ok(Status::Ok)
                }
                Err(e) => {
                    out.error(cmd, op, &e.into());
                    Ok(Status::IoctlFailed)
                }
            }
        }
        "wait" => {
            let (mut n, mut timeout, mut via) = (16, 0, KEVENT_USER_WAIT);
            for (k, v) in fields(rest, &["num", "timeout", "via"])? {
                match k {
                    "num" => n = num(v)?,
                    "timeout" => timeout = num(v)?,
                    _ => {
                        via = match v {
                            "wait" => KEVENT_USER_WAIT,
                            "ctl" => KEVENT_USER_CTL,
                            _ => bad!("via= takes wait or ctl, not {v:?}"),
                        }
                    }
                }
            }
            if n > 1 << 20 {
                bad!("num={n} is too large (at most {})", 1 << 20)
            }
            Ok(match wait(dev, n, timeout, via) {
                Ok(evs) => {
                    if out.json {
                        out.line(&json::object(&[
                            ("cmd", json::str("wait")),
                            ("ok", "true".into()),
                            ("ret", evs.len().to_string()),
                            ("events", json::events(&evs, None)),
                        ]));
                    } else {
                        out.line(&format!("wait ret={}", evs.len()));
                        evs.iter().for_each(|u| out.line(&ev_text(u, "")));
                    }
                    Status::Ok
                }
                Err(e) => {
                    out.error("wait", "WAIT", &e);
                    Status::IoctlFailed
                }
            })
        }
        "expect" => Ok(run_expect(dev, out, &Expect::parse(rest)?)),
        "ioctl" => {
            let [nr] = rest else {
                bad!("ioctl takes exactly one number")
            };
            let nr = num(nr)?;
            // A zeroed header (cmd ADD, num 0) and room for the largest
            // argument an ioctl number can encode (_IOC_SIZE < 16 KiB).
            let mut buf = vec![0u8; 16384 + 12];
            // SAFETY: the buffer outlives the call and covers every byte a
            // size-encoded ioctl may touch; the kevent ioctls with num 0
            // touch 12 bytes; the device answers other numbers with ENODEV.
            #[allow(unsafe_code)]
            let r = unsafe { dev.raw_ioctl(nr, buf.as_mut_ptr()) };
            Ok(match r {
                Ok(r) => {
                    if out.json {
                        out.line(&json::object(&[
                            ("cmd", json::str("ioctl")),
                            ("ok", "true".into()),
                            ("ret", r.to_string()),
                        ]));
                    } else {
                        out.line(&format!("ioctl ret={r}"));
                    }
                    Status::Ok
                }
                Err(e) => {
                    out.error("ioctl", "ioctl", &e);
                    Status::IoctlFailed
                }
            })
        }
        "sleep" => {
            let [ms] = rest else {
                bad!("sleep takes exactly one number of milliseconds")
            };
            let ms = num(ms)?;
            std::thread::sleep(Duration::from_millis(ms.into()));
            if out.json {
                out.line(&json::object(&[
                    ("cmd", json::str("sleep")),
                    ("ok", "true".into()),
                    ("ms", ms.to_string()),
                ]));
            }
            Ok(Status::Ok)
        }
        c if c.starts_with('#') => Ok(Status::Ok),
        other => {
            let _ = lineno;
            bad!("unknown command {other:?} (add, remove, modify, wait, expect, ioctl, sleep)")
        }
    }
}

fn run_add(dev: &Device, out: &Out, evs: &mut [Ukevent]) -> Status {
    match dev.add(evs) {
        Ok(a) => {
            let status: Vec<_> = a.written_back.iter().map(|w| w.status).collect();
            let back: Vec<Ukevent> = a.written_back.iter().map(|w| w.event).collect();
            let last_errno = match a.written_back.last().map(|w| w.status) {
                Some(AddStatus::Failed(Some(e))) if a.ret < 0 => Some(e),
                Some(AddStatus::UnknownType) if a.ret < 0 => Some(Errno::E2BIG),
                _ => None,
            };
            if out.json {
                let mut f = vec![
                    ("cmd", json::str("add")),
                    ("ok", (a.ret >= 0).to_string()),
                    ("ret", a.ret.to_string()),
                    ("num", back.len().to_string()),
                ];
                if let Some(e) = last_errno {
                    f.push(("errno", e.0.to_string()));
                    f.push(("error", json::str(&e.to_string())));
                }
                f.push(("events", json::events(&back, Some(&status))));
                out.line(&json::object(&f));
            } else {
                match last_errno {
                    Some(e) => out.line(&format!(
                        "add error={} errno={} (ADD: {} (os error {}))",
                        e.name().unwrap_or(""),
                        e.0,
                        e.description(),
                        e.0
                    )),
                    None => out.line(&format!("add ret={} num={}", a.ret, back.len())),
                }
                for (u, s) in back.iter().zip(&status) {
                    let mut l = ev_text(u, "");
                    match s {
                        AddStatus::Failed(Some(e)) => l.push_str(&format!(" errno={e}")),
                        AddStatus::UnknownType => l.push_str(" errno=E2BIG"),
                        _ => {}
                    }
                    out.line(&l);
                }
            }
            if a.ret < 0 {
                Status::IoctlFailed
            } else {
                Status::Ok
            }
        }
        Err(e) => {
            out.error("add", "ADD", &e.into());
            Status::IoctlFailed
        }
    }
}

/// WAIT through either ioctl.
fn wait(dev: &Device, n: u32, timeout: u32, via: u32) -> std::io::Result<Vec<Ukevent>> {
    let hdr = KeventUserControl {
        cmd: KEVENT_CTL_WAIT,
        num: n,
        timeout,
    };
    let mut buf = hdr.encode().to_vec();
    buf.resize(12 + n as usize * Ukevent::SIZE, 0);
    let r = dev.ioctl(via, &mut buf)?;
    let r = (r.max(0) as usize).min(n as usize);
    Ok(Ukevent::decode_array(&buf[12..], r).unwrap_or_default())
}

fn run_expect(dev: &Device, out: &Out, e: &Expect) -> Status {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(e.timeout_ms.into());
    let mut skipped = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Timeout 0 means "1 s" to the device: ask for at least 1 ms.
        let ms = left.as_millis().clamp(1, u32::MAX as u128) as u32;
        let evs = match dev.wait(1, ms) {
            Ok(evs) => evs,
            Err(err) => {
                out.error("expect", "WAIT", &err.into());
                return Status::IoctlFailed;
            }
        };
        for u in evs {
            if e.matches(&u) {
                if out.json {
                    out.line(&json::object(&[
                        ("cmd", json::str("expect")),
                        ("ok", "true".into()),
                        ("ms", start.elapsed().as_millis().to_string()),
                        ("event", json::event(&u, None)),
                        ("skipped", json::events(&skipped, None)),
                    ]));
                } else {
                    out.line("expect ok");
                    skipped
                        .iter()
                        .for_each(|s| out.line(&ev_text(s, "skipped ")));
                    out.line(&ev_text(&u, ""));
                }
                return Status::Ok;
            }
            skipped.push(u);
        }
    }
    if out.json {
        out.line(&json::object(&[
            ("cmd", json::str("expect")),
            ("ok", "false".into()),
            ("error", json::str("timeout")),
            ("timeout_ms", e.timeout_ms.to_string()),
            ("skipped", json::events(&skipped, None)),
        ]));
    } else {
        out.line(&format!("expect timeout after {} ms", e.timeout_ms));
        skipped
            .iter()
            .for_each(|s| out.line(&ev_text(s, "skipped ")));
    }
    Status::ExpectTimeout
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let dev = if cli.nonblock {
        Device::open_nonblocking(&cli.dev)
    } else {
        Device::open(&cli.dev)
    }?;
    let out = Out { json: cli.json };
    let mut ioctl_failed = false;
    let mut malformed = false;
    let mut handle = |lineno: usize, line: &str| -> Option<i32> {
        match run_line(&dev, &out, lineno, line) {
            Ok(Status::Ok) => None,
            Ok(Status::IoctlFailed) => {
                ioctl_failed = true;
                cli.stop_on_error.then_some(1)
            }
            Ok(Status::ExpectTimeout) => Some(3),
            Err(ParseError(msg)) => {
                let cmd = line.split_whitespace().next().unwrap_or("");
                out.parse_error(lineno, cmd, &msg);
                malformed = true;
                None
            }
        }
    };
    let mut early = None;
    if cli.commands.is_empty() {
        // Line by line as it arrives: usable as a coprocess.
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            if let Some(code) = handle(i + 1, &line?) {
                early = Some(code);
                break;
            }
        }
    } else {
        for (i, line) in cli.commands.iter().enumerate() {
            if let Some(code) = handle(i + 1, line) {
                early = Some(code);
                break;
            }
        }
    }
    let code = early.unwrap_or(if malformed {
        2
    } else if ioctl_failed && !cli.errors_ok {
        1
    } else {
        0
    });
    std::process::exit(code);
}
