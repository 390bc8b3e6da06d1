//! Hand-built netlink messages for what the rtnetlink crates do not speak (ctnetlink, nf_tables,
//! netconf): a header, a family header (`struct nfgenmsg` built here), attributes; and walking
//! the answers. Every builder here has golden-byte tests where it is used.

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One message: `struct nlmsghdr` (length, type, flags, sequence, port 0) and `body`.
pub fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// `struct nfgenmsg`: family, NFNETLINK_V0, resource ID (big-endian).
pub fn nfgenmsg(family: u8, res_id: u16) -> Vec<u8> {
    let [a, b] = res_id.to_be_bytes();
    vec![family, 0, a, b]
}

/// One attribute, padded to 4 bytes.
pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + value.len() + 3);
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    pad(&mut a);
    a
}

/// A string attribute, NUL-terminated as the kernel's NLA_STRING policy wants it.
pub fn str_attr(kind: u16, value: &str) -> Vec<u8> {
    let mut v = value.as_bytes().to_vec();
    v.push(0);
    attr(kind, &v)
}

pub fn pad(v: &mut Vec<u8>) {
    v.resize((v.len() + 3) & !3, 0);
}

/// Set on the messages of a dump whose objects changed while it was being sent: what came
/// may have skipped some, and the dump has to be asked for again.
pub const NLM_F_DUMP_INTR: u16 = 0x10;

/// One message of a datagram.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Each message in a datagram; stops at anything malformed.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        if len < 16 || len > buf.len() {
            return None;
        }
        let m = Msg {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[16..len],
        };
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some(m)
    })
}

/// The (type without flags, whole attribute, value) of each attribute; stops at anything
/// malformed.
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8], &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]) as usize;
        if len < 4 || len > buf.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        let (raw, value) = (&buf[..len], &buf[4..len]);
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, raw, value))
    })
}

/// A string attribute's value without its NUL.
pub fn attr_str(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// The positive errno of an NLMSG_ERROR payload (0: an ACK), or of an NLMSG_DONE one (a
/// dump that ended in an error).
pub fn error_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        assert_eq!(str_attr(3, "ab"), [7, 0, 3, 0, b'a', b'b', 0, 0]);
        assert_eq!(nfgenmsg(2, 10), [2, 0, 0, 10]);
        assert_eq!(attr_str(b"eth0\0\0"), "eth0");
    }

    #[test]
    fn malformed_input_ends_the_walk() {
        assert_eq!(attrs(&[200, 0, 1, 0, 9]).count(), 0);
        assert_eq!(messages(&[16, 0, 0]).count(), 0);
        // A DONE message, then garbage.
        let mut d = message(NLMSG_DONE, 0, 1, &[0, 0, 0, 0]);
        d.extend([1, 2, 3]);
        assert_eq!(messages(&d).map(|m| (m.kind, m.seq)).collect::<Vec<_>>(), [(NLMSG_DONE, 1)]);
    }
}
