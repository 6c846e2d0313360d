//! The few JSON shapes kevent-ctl prints, written by hand (numbers, fixed
//! names and escaped strings only).

use kevent_client::{
    AddStatus, EventType, Ukevent, KEVENT_REQ_ONESHOT, KEVENT_RET_BROKEN, KEVENT_RET_DONE,
};

/// A JSON string literal.
pub fn str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `{"k":v,...}` from already encoded values.
pub fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", str(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn names(bits: u32, table: &[(&str, u32)]) -> String {
    let mut v: Vec<String> = Vec::new();
    let mut rest = bits;
    for (n, b) in table {
        if bits & b != 0 {
            v.push(str(n));
            rest &= !b;
        }
    }
    if rest != 0 {
        v.push(str(&format!("{rest:#x}")));
    }
    format!("[{}]", v.join(","))
}

/// One ukevent, every field, with names next to the numbers.
pub fn event(u: &Ukevent, status: Option<AddStatus>) -> String {
    let kind = EventType::from_raw(u.type_);
    let mut f = vec![
        ("id", format!("[{},{}]", u.id[0], u.id[1])),
        (
            "type",
            kind.map_or_else(|| "null".into(), |t| str(t.name())),
        ),
        ("type_num", u.type_.to_string()),
        ("event", u.event.to_string()),
        (
            "events",
            match kind {
                Some(t) => names(u.event, t.event_names()),
                None => "[]".into(),
            },
        ),
        ("req_flags", u.req_flags.to_string()),
        (
            "req",
            names(u.req_flags, &[("oneshot", KEVENT_REQ_ONESHOT)]),
        ),
        ("ret_flags", u.ret_flags.to_string()),
        (
            "ret",
            names(
                u.ret_flags,
                &[("broken", KEVENT_RET_BROKEN), ("done", KEVENT_RET_DONE)],
            ),
        ),
        ("ret_data", format!("[{},{}]", u.ret_data[0], u.ret_data[1])),
        ("user", format!("[{},{}]", u.user[0], u.user[1])),
    ];
    if let Some(s) = status {
        let (name, errno) = match s {
            AddStatus::Ready => ("ready", "null".to_string()),
            AddStatus::Failed(e) => (
                "failed",
                e.map_or_else(|| "null".into(), |e| str(&e.to_string())),
            ),
            AddStatus::UnknownType => ("unknown_type", str("E2BIG")),
        };
        f.push(("status", str(name)));
        f.push(("errno", errno));
    }
    object(&f)
}

/// An array of ukevents (with ADD statuses when given).
pub fn events(evs: &[Ukevent], status: Option<&[AddStatus]>) -> String {
    let v: Vec<String> = evs
        .iter()
        .enumerate()
        .map(|(i, u)| event(u, status.and_then(|s| s.get(i).copied())))
        .collect();
    format!("[{}]", v.join(","))
}
