//! The C header `client-c/include/kevent.h` and this crate must agree on
//! every size, offset, constant and ioctl number: `tests/c/layout.c` prints
//! the C view (`name value` per line), compiled here with the system C
//! compiler, and each line is compared with the Rust value of that name.

use kevent_protocol::kevent::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn rust_view() -> BTreeMap<&'static str, u64> {
    use ukevent_offset as o;
    let mut m = BTreeMap::new();
    let mut put = |k: &'static str, v: u64| {
        assert!(m.insert(k, v).is_none(), "duplicate {k}");
    };
    put("sizeof_kevent_id", 8);
    put("sizeof_ukevent", Ukevent::SIZE as u64);
    put("sizeof_kevent_user_control", KeventUserControl::SIZE as u64);
    // docs/ABI.md §1: alignment 8 on x86-64 (the union holds a pointer).
    put("alignof_kevent_id", 4);
    put("alignof_ukevent", 8);
    put("alignof_kevent_user_control", 4);
    put("offsetof_kevent_id_raw", 0);
    put("offsetof_ukevent_id", o::ID as u64);
    put("offsetof_ukevent_type", o::TYPE as u64);
    put("offsetof_ukevent_event", o::EVENT as u64);
    put("offsetof_ukevent_req_flags", o::REQ_FLAGS as u64);
    put("offsetof_ukevent_ret_flags", o::RET_FLAGS as u64);
    put("offsetof_ukevent_ret_data", o::RET_DATA as u64);
    put("offsetof_ukevent_user", o::USER as u64);
    put("offsetof_ukevent_ptr", o::USER as u64);
    put("offsetof_kevent_user_control_cmd", 0);
    put(
        "offsetof_kevent_user_control_num",
        KeventUserControl::OFFSET_NUM as u64,
    );
    put("offsetof_kevent_user_control_timeout", 8);
    macro_rules! c {
        ($($n:ident),* $(,)?) => { $( put(stringify!($n), $n as u64); )* };
    }
    c!(
        KEVENT_REQ_ONESHOT,
        KEVENT_RET_BROKEN,
        KEVENT_RET_DONE,
        KEVENT_SOCKET,
        KEVENT_INODE,
        KEVENT_TIMER,
        KEVENT_POLL,
        KEVENT_NAIO,
        KEVENT_AIO,
        KEVENT_MAX,
        KEVENT_TIMER_FIRED,
        KEVENT_SOCKET_RECV,
        KEVENT_SOCKET_ACCEPT,
        KEVENT_SOCKET_SEND,
        KEVENT_INODE_CREATE,
        KEVENT_INODE_REMOVE,
        KEVENT_POLL_POLLIN,
        KEVENT_POLL_POLLPRI,
        KEVENT_POLL_POLLOUT,
        KEVENT_POLL_POLLERR,
        KEVENT_POLL_POLLHUP,
        KEVENT_POLL_POLLNVAL,
        KEVENT_POLL_POLLRDNORM,
        KEVENT_POLL_POLLRDBAND,
        KEVENT_POLL_POLLWRNORM,
        KEVENT_POLL_POLLWRBAND,
        KEVENT_POLL_POLLMSG,
        KEVENT_POLL_POLLREMOVE,
        KEVENT_AIO_BIO,
        KEVENT_MASK_ALL,
        KEVENT_MASK_EMPTY,
        KEVENT_CTL_ADD,
        KEVENT_CTL_REMOVE,
        KEVENT_CTL_MODIFY,
        KEVENT_CTL_WAIT,
        KEVENT_CTL_INIT,
        KEVENT_USER_SYMBOL,
        KEVENT_USER_CTL,
        KEVENT_USER_WAIT,
    );
    m
}

#[test]
fn c_header_matches_rust_byte_for_byte() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = out_dir.join("kevent-layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(root.join("client-c/include"))
        .arg(root.join("tests/c/layout.c"))
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e} (a C compiler is required)"));
    assert!(status.success(), "compiling tests/c/layout.c failed");
    let out = Command::new(&exe)
        .output()
        .expect("running the layout program");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let c: BTreeMap<String, u64> = text
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                k.to_string(),
                v.parse().unwrap_or_else(|_| panic!("bad value {l:?}")),
            )
        })
        .collect();
    let rust = rust_view();
    for (k, v) in &rust {
        assert_eq!(
            c.get(*k),
            Some(v),
            "{k}: C says {:?}, Rust says {v}",
            c.get(*k)
        );
    }
    let extra: Vec<&String> = c
        .keys()
        .filter(|k| !rust.contains_key(k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "C prints items Rust does not check: {extra:?}"
    );
}
