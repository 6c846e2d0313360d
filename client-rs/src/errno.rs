//! Errno values with their names, as the kevent ABI reports them.

use std::fmt;

/// An errno value (`EINVAL`, `ENODEV`, ...), kept as the raw number so that
/// values this table does not name survive unchanged.
///
/// ```
/// use kevent_client::Errno;
/// assert_eq!(Errno::ENODEV.name(), Some("ENODEV"));
/// assert_eq!(Errno::from_name("E2BIG"), Some(Errno(7)));
/// assert_eq!(Errno(22).to_string(), "EINVAL");
/// assert_eq!(Errno(4242).to_string(), "errno 4242");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub const $name: Errno = Errno(libc::$name);
            )*
            const TABLE: &'static [(i32, &'static str)] = &[$((libc::$name, stringify!($name))),*];
        }
    };
}

errnos!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EPIPE,
    ERANGE,
    ENOSYS,
    ENOTCONN,
    ECONNABORTED,
    ECONNRESET,
    EOPNOTSUPP,
    ETIMEDOUT,
    ENOTSOCK,
    EOVERFLOW,
    ENAMETOOLONG,
    ELOOP,
    ESTALE,
);

impl Errno {
    /// The symbolic name, if this table knows it.
    pub fn name(self) -> Option<&'static str> {
        Self::TABLE
            .iter()
            .find(|(n, _)| *n == self.0)
            .map(|(_, name)| *name)
    }

    /// The errno of a symbolic name (`"EINVAL"`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Errno> {
        Self::TABLE
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(v, _)| Errno(*v))
    }

    /// The errno of an I/O error, if it carries one.
    pub fn from_io(e: &std::io::Error) -> Option<Errno> {
        e.raw_os_error().map(Errno)
    }

    /// The C library's description (`strerror`).
    pub fn description(self) -> String {
        std::io::Error::from_raw_os_error(self.0)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}
