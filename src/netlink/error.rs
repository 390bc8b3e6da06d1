//! Errors from the kernel-facing core: what was being done, the errno if any, and the
//! kernel's own words (extended ACK text when the kernel gave some, else the errno text).

use nix::errno::Errno;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was being done, naming the object: `failed to add address 10.0.0.2/24 to "eth0"`.
    pub context: String,
    pub errno: Option<i32>,
    pub message: String,
}

impl Error {
    pub fn new(context: impl Into<String>, message: impl Into<String>) -> Error {
        Error { context: context.into(), errno: None, message: message.into() }
    }

    pub fn errno(context: impl Into<String>, errno: Errno) -> Error {
        Error { context: context.into(), errno: Some(errno as i32), message: errno.desc().to_string() }
    }

    pub fn io(context: impl Into<String>, e: &std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(n) => Error::errno(context, Errno::from_raw(n)),
            None => Error::new(context, e.to_string()),
        }
    }

    pub(crate) fn kernel(context: impl Into<String>, errno: i32, text: Option<String>) -> Error {
        let desc = Errno::from_raw(errno).desc();
        let message = match text {
            Some(t) if !t.is_empty() => format!("{t} ({desc})"),
            _ => desc.to_string(),
        };
        Error { context: context.into(), errno: Some(errno), message }
    }

    /// The object does not exist (ENOENT, ENODEV, ESRCH).
    pub fn is_not_found(&self) -> bool {
        self.errno.is_some_and(crate::netns::errno_is_not_found)
    }

    pub fn is_exists(&self) -> bool {
        self.errno == Some(Errno::EEXIST as i32)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::cni::CniError {
    fn from(e: Error) -> Self {
        crate::cni::CniError::internal(e.to_string())
    }
}

const NLMSG_HDRLEN: usize = 16;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The NLMSGERR_ATTR_MSG text from the payload of an NLMSG_ERROR that follows the error code,
/// when the request was echoed capped (only its 16-byte header; NETLINK_CAP_ACK).
pub(crate) fn ext_ack_message(payload: &[u8]) -> Option<String> {
    let mut attrs = payload.get(NLMSG_HDRLEN..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let value = &attrs[4..len];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        let aligned = (len + 3) & !3;
        attrs = attrs.get(aligned..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload after the error code of a real reply: `ip link add x type nosuchkind`
    /// with NETLINK_EXT_ACK and NETLINK_CAP_ACK (little endian): the echoed header, then
    /// NLMSGERR_ATTR_MSG "Unknown device type" (len 24) and NLMSGERR_ATTR_OFFS.
    fn golden() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&[0x3c, 0, 0, 0, 0x10, 0, 0x05, 0x06, 1, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[24, 0, 1, 0]);
        p.extend_from_slice(b"Unknown device type\0");
        p.extend_from_slice(&[8, 0, 2, 0, 0x20, 0, 0, 0]);
        p
    }

    #[test]
    fn ext_ack_text() {
        assert_eq!(ext_ack_message(&golden()).as_deref(), Some("Unknown device type"));
    }

    #[test]
    fn ext_ack_after_other_attribute_and_absent() {
        let mut p = golden()[..16].to_vec();
        p.extend_from_slice(&[8, 0, 2, 0, 0x20, 0, 0, 0]);
        assert_eq!(ext_ack_message(&p), None);
        p.extend_from_slice(&[7, 0, 1, 0, b'b', b'a', b'd', 0]);
        assert_eq!(ext_ack_message(&p).as_deref(), Some("bad"));
        assert_eq!(ext_ack_message(&[1, 2, 3]), None);
        // A length running past the end is ignored rather than trusted.
        let mut q = golden()[..16].to_vec();
        q.extend_from_slice(&[200, 0, 1, 0, b'x']);
        assert_eq!(ext_ack_message(&q), None);
    }

    #[test]
    fn display_and_kinds() {
        let e = Error::kernel("failed to add \"br0\"", Errno::EEXIST as i32, Some("Unknown device type".into()));
        assert_eq!(e.to_string(), "failed to add \"br0\": Unknown device type (File exists)");
        assert!(e.is_exists());
        let e = Error::kernel("failed to find \"x\"", Errno::ENODEV as i32, None);
        assert!(e.is_not_found());
        assert_eq!(e.message, "No such device");
    }
}
