//! A D-Bus client just large enough to call methods on the system bus: the firewall plugin's
//! firewalld backend asks firewalld to put container addresses into a zone.
//!
//! One blocking Unix socket, EXTERNAL authentication, `Hello`, then method calls whose
//! arguments are strings and whose replies are read for their first argument (a string or a
//! boolean) or their error. Messages are built and read here in the wire format of the D-Bus
//! specification (little-endian out, either byte order in); anything else the bus sends (its
//! `NameAcquired` signal, say) is skipped.
//!
//! The bus is the one `DBUS_SYSTEM_BUS_ADDRESS` names, as for every D-Bus client, else
//! `unix:path=/var/run/dbus/system_bus_socket`.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const DEFAULT_SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";
/// How long a reply may take: D-Bus's own default for a method call.
const REPLY_TIMEOUT: Duration = Duration::from_secs(25);
/// Replies here are a few hundred bytes; anything past this is not one of ours.
const MAX_MESSAGE: usize = 1 << 20;

const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

// Message types, flags and header field codes.
const METHOD_CALL: u8 = 1;
/// A call must not start a service that is not running (the bus could start firewalld through
/// systemd where an operator stopped it); `Bus::start` alone asks for that.
const NO_AUTO_START: u8 = 2;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

#[derive(Debug)]
pub enum DbusError {
    /// No bus at the address (not running, not installed).
    Connect {
        address: String,
        err: io::Error,
    },
    /// The bus refused us, or spoke something else.
    Protocol(String),
    Io(io::Error),
    /// The called service answered with an error.
    Remote {
        name: String,
        message: String,
    },
    /// A service the caller needs has no owner on the bus.
    NotRunning(String),
}

impl fmt::Display for DbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbusError::Connect { address, err } => {
                write!(f, "cannot connect to the D-Bus system bus at {address}: {err}")
            }
            DbusError::Protocol(m) => write!(f, "D-Bus: {m}"),
            DbusError::Io(e) => write!(f, "D-Bus: {e}"),
            DbusError::Remote { name, message } => write!(f, "{name}: {message}"),
            DbusError::NotRunning(what) => write!(f, "{what} is not running (it has no name on the system bus)"),
        }
    }
}

impl From<io::Error> for DbusError {
    fn from(e: io::Error) -> Self {
        DbusError::Io(e)
    }
}

fn protocol(msg: impl Into<String>) -> DbusError {
    DbusError::Protocol(msg.into())
}

/// The first argument of a reply, where it is one of the two kinds read here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Str(String),
    Bool(bool),
    Other,
}

/// A method call: destination, object path, interface, member.
#[derive(Clone, Copy)]
pub struct Method<'a> {
    pub dest: &'a str,
    pub path: &'a str,
    pub iface: &'a str,
    pub member: &'a str,
}

pub struct Bus {
    sock: UnixStream,
    serial: u32,
    /// A read or write failed part-way (a timeout, say): the stream is out of step.
    broken: bool,
}

impl Bus {
    /// The system bus, authenticated and registered (`Hello`).
    pub fn system() -> Result<Bus, DbusError> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| DEFAULT_SYSTEM_BUS.to_string());
        Bus::open(&address)
    }

    /// The bus at a D-Bus server address (`unix:path=…` or `unix:abstract=…`; of a list
    /// separated by `;`, the first that answers).
    pub fn open(address: &str) -> Result<Bus, DbusError> {
        let mut last = None;
        for one in address.split(';').filter(|a| !a.is_empty()) {
            match connect(one) {
                Ok(sock) => {
                    let mut bus = Bus { sock, serial: 0, broken: false };
                    bus.sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
                    bus.sock.set_write_timeout(Some(REPLY_TIMEOUT))?;
                    bus.authenticate()?;
                    bus.call(Method { dest: BUS_NAME, path: BUS_PATH, iface: BUS_NAME, member: "Hello" }, &[])?;
                    return Ok(bus);
                }
                Err(e) => last = Some(DbusError::Connect { address: one.to_string(), err: e }),
            }
        }
        Err(last.unwrap_or_else(|| protocol(format!("no usable address in \"{address}\""))))
    }

    /// Whether a name (a service's well-known name) has an owner on the bus.
    pub fn has_owner(&mut self, name: &str) -> Result<bool, DbusError> {
        let m = Method { dest: BUS_NAME, path: BUS_PATH, iface: BUS_NAME, member: "GetNameOwner" };
        match self.call(m, &[name]) {
            Ok(_) => Ok(true),
            Err(DbusError::Remote { name, .. }) if name == "org.freedesktop.DBus.Error.NameHasNoOwner" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Have the bus start the service that owns `name` (D-Bus activation: its service file,
    /// through systemd on a node), and wait until it answers a ping: a call with auto-start
    /// allowed, which the bus holds until the service has taken its name. A name no service
    /// file provides is NotRunning; a start that fails (a unit disabled or masked, say) is the
    /// bus's or systemd's error, and one that takes longer than a reply may says so.
    pub fn start(&mut self, name: &str) -> Result<(), DbusError> {
        let ping = Method { dest: name, path: "/", iface: "org.freedesktop.DBus.Peer", member: "Ping" };
        match self.call_flags(ping, &[], 0) {
            Ok(_) => Ok(()),
            Err(DbusError::Remote { name: e, .. }) if e == "org.freedesktop.DBus.Error.ServiceUnknown" => {
                Err(DbusError::NotRunning(name.to_string()))
            }
            Err(DbusError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(protocol(format!("{name} did not start within {} s", REPLY_TIMEOUT.as_secs())))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a failed read or write left the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Call a method with string arguments and wait for its reply.
    pub fn call(&mut self, m: Method<'_>, args: &[&str]) -> Result<Reply, DbusError> {
        self.call_flags(m, args, NO_AUTO_START)
    }

    fn call_flags(&mut self, m: Method<'_>, args: &[&str], flags: u8) -> Result<Reply, DbusError> {
        if self.broken {
            return Err(protocol("the connection to the bus broke earlier"));
        }
        let out = self.exchange(m, args, flags);
        if matches!(out, Err(DbusError::Io(_) | DbusError::Protocol(_))) {
            self.broken = true;
        }
        out
    }

    fn exchange(&mut self, m: Method<'_>, args: &[&str], flags: u8) -> Result<Reply, DbusError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        self.sock.write_all(&method_call(serial, m, args, flags))?;
        loop {
            let msg = self.read_message()?;
            let Some(header) = parse_header(&msg)? else { continue };
            if header.reply_serial != Some(serial) || !matches!(header.kind, METHOD_RETURN | ERROR) {
                continue;
            }
            let first = first_arg(&msg[header.body..], &header.signature, header.little)?; // body <= len: parse_header
            if header.kind == ERROR {
                let message = match first {
                    Reply::Str(s) => s,
                    _ => String::new(),
                };
                return Err(DbusError::Remote { name: header.error_name.unwrap_or_default(), message });
            }
            return Ok(first);
        }
    }

    fn authenticate(&mut self) -> Result<(), DbusError> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex = crate::util::hex(uid.as_bytes(), "");
        self.sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(protocol(format!("the bus refused EXTERNAL authentication: {}", line.trim_end())));
        }
        self.sock.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    /// One line of the authentication exchange (the server sends nothing past it before BEGIN).
    fn read_line(&mut self) -> Result<String, DbusError> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if self.sock.read(&mut b)? == 0 {
                return Err(protocol("the bus closed the connection during authentication"));
            }
            line.push(b[0]);
            if line.len() > 512 {
                return Err(protocol("authentication line too long"));
            }
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn read_message(&mut self) -> Result<Vec<u8>, DbusError> {
        let mut msg = vec![0u8; 16];
        self.sock.read_exact(&mut msg).map_err(eof)?;
        let little = match msg[0] {
            b'l' => true,
            b'B' => false,
            other => return Err(protocol(format!("bad byte order mark {other:#04x}"))),
        };
        if msg[3] != 1 {
            return Err(protocol(format!("message of protocol version {}, not 1", msg[3])));
        }
        let body_len = u32_at(&msg, 4, little) as usize;
        let fields_len = u32_at(&msg, 12, little) as usize;
        if body_len > MAX_MESSAGE || fields_len > MAX_MESSAGE {
            return Err(protocol(format!("message of {body_len} + {fields_len} bytes is too large")));
        }
        let total = align(16 + fields_len, 8) + body_len;
        msg.resize(total, 0);
        self.sock.read_exact(&mut msg[16..]).map_err(eof)?;
        Ok(msg)
    }
}

fn eof(e: io::Error) -> DbusError {
    if e.kind() == io::ErrorKind::UnexpectedEof { protocol("the bus closed the connection") } else { DbusError::Io(e) }
}

fn connect(address: &str) -> io::Result<UnixStream> {
    let unsupported = || io::Error::new(io::ErrorKind::Unsupported, "only unix:path= and unix:abstract= are supported");
    let rest = address.strip_prefix("unix:").ok_or_else(unsupported)?;
    for kv in rest.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "path" => {
                use std::os::unix::ffi::OsStringExt;
                return UnixStream::connect(std::ffi::OsString::from_vec(unescape(v)));
            }
            "abstract" => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(unescape(v))?;
                return UnixStream::connect_addr(&addr);
            }
            _ => {}
        }
    }
    Err(unsupported())
}

/// A D-Bus address value: `%XX` escapes decoded.
fn unescape(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(x) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(byte) = u8::from_str_radix(x, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

fn u32_at(b: &[u8], at: usize, little: bool) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    if little { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) }
}

// ---- writing ------------------------------------------------------------------------------

struct Writer(Vec<u8>);

impl Writer {
    fn pad(&mut self, to: usize) {
        let n = align(self.0.len(), to);
        self.0.resize(n, 0);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    /// A header field holding a string-like value of type `ty` (`s`, `o` or `g`).
    fn field(&mut self, code: u8, ty: &str, v: &str) {
        self.pad(8);
        self.0.push(code);
        self.sig(ty);
        if ty == "g" { self.sig(v) } else { self.str(v) }
    }
}

/// A METHOD_CALL message with string arguments and these header flags.
fn method_call(serial: u32, m: Method<'_>, args: &[&str], flags: u8) -> Vec<u8> {
    let mut body = Writer(Vec::new());
    for a in args {
        body.str(a);
    }
    let mut w = Writer(Vec::with_capacity(160 + body.0.len()));
    w.0.extend_from_slice(&[b'l', METHOD_CALL, flags, 1]);
    w.u32(body.0.len() as u32);
    w.u32(serial);
    w.u32(0); // the fields' length, filled in below
    w.field(FIELD_PATH, "o", m.path);
    w.field(FIELD_DESTINATION, "s", m.dest);
    w.field(FIELD_INTERFACE, "s", m.iface);
    w.field(FIELD_MEMBER, "s", m.member);
    if !args.is_empty() {
        w.field(FIELD_SIGNATURE, "g", &"s".repeat(args.len()));
    }
    let fields_len = (w.0.len() - 16) as u32;
    w.0[12..16].copy_from_slice(&fields_len.to_le_bytes());
    w.pad(8);
    w.0.extend_from_slice(&body.0);
    w.0
}

// ---- reading ------------------------------------------------------------------------------

struct Header {
    kind: u8,
    little: bool,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    signature: String,
    /// Where the body starts.
    body: usize,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    little: bool,
}

impl Reader<'_> {
    fn short() -> DbusError {
        protocol("truncated message")
    }
    fn align(&mut self, to: usize) -> Result<(), DbusError> {
        self.at = align(self.at, to);
        if self.at > self.b.len() { Err(Self::short()) } else { Ok(()) }
    }
    fn u8(&mut self) -> Result<u8, DbusError> {
        let v = *self.b.get(self.at).ok_or_else(Self::short)?;
        self.at += 1;
        Ok(v)
    }
    fn u32(&mut self) -> Result<u32, DbusError> {
        self.align(4)?;
        if self.at + 4 > self.b.len() {
            return Err(Self::short());
        }
        let v = u32_at(self.b, self.at, self.little);
        self.at += 4;
        Ok(v)
    }
    fn bytes(&mut self, n: usize) -> Result<String, DbusError> {
        let end = self.at.checked_add(n).filter(|e| *e < self.b.len()).ok_or_else(Self::short)?;
        let s = String::from_utf8_lossy(&self.b[self.at..end]).into_owned();
        self.at = end + 1; // the terminating NUL
        Ok(s)
    }
    fn str(&mut self) -> Result<String, DbusError> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
    fn sig(&mut self) -> Result<String, DbusError> {
        let n = self.u8()? as usize;
        self.bytes(n)
    }
}

/// The header of a whole message; None for a message that is not a reply.
fn parse_header(msg: &[u8]) -> Result<Option<Header>, DbusError> {
    let little = msg[0] == b'l';
    let kind = msg[1];
    if !matches!(kind, METHOD_RETURN | ERROR) {
        return Ok(None);
    }
    let fields_end = 16 + u32_at(msg, 12, little) as usize;
    if align(fields_end, 8) > msg.len() {
        return Err(protocol("truncated message"));
    }
    let mut h = Header {
        kind,
        little,
        reply_serial: None,
        error_name: None,
        signature: String::new(),
        body: align(fields_end, 8),
    };
    let mut r = Reader { b: &msg[..fields_end], at: 16, little };
    while r.at < fields_end {
        r.align(8)?;
        if r.at >= fields_end {
            break;
        }
        let code = r.u8()?;
        let ty = r.sig()?;
        match (code, ty.as_str()) {
            (FIELD_REPLY_SERIAL, "u") => h.reply_serial = Some(r.u32()?),
            (_, "u") => drop(r.u32()?),
            (FIELD_ERROR_NAME, "s") => h.error_name = Some(r.str()?),
            (_, "s" | "o") => drop(r.str()?),
            (FIELD_SIGNATURE, "g") => h.signature = r.sig()?,
            (_, "g") => drop(r.sig()?),
            (code, ty) => return Err(protocol(format!("header field {code} of unexpected type \"{ty}\""))),
        }
    }
    Ok(Some(h))
}

fn first_arg(body: &[u8], signature: &str, little: bool) -> Result<Reply, DbusError> {
    let mut r = Reader { b: body, at: 0, little };
    Ok(match signature.as_bytes().first() {
        Some(b's') => Reply::Str(r.str()?),
        Some(b'b') => Reply::Bool(r.u32()? != 0),
        _ => Reply::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREWALLD: Method<'static> = Method {
        dest: "org.fedoraproject.FirewallD1",
        path: "/org/fedoraproject/FirewallD1",
        iface: "org.fedoraproject.FirewallD1.zone",
        member: "addSource",
    };

    #[test]
    fn method_call_golden_bytes() {
        let m = Method { dest: BUS_NAME, path: BUS_PATH, iface: BUS_NAME, member: "Hello" };
        let got = method_call(1, m, &[], NO_AUTO_START);
        let mut want: Vec<u8> = vec![b'l', 1, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0x6e, 0, 0, 0];
        // PATH "o" /org/freedesktop/DBus
        want.extend_from_slice(&[1, 1, b'o', 0, 21, 0, 0, 0]);
        want.extend_from_slice(b"/org/freedesktop/DBus\0");
        want.extend_from_slice(&[0, 0]);
        // DESTINATION "s" org.freedesktop.DBus
        want.extend_from_slice(&[6, 1, b's', 0, 20, 0, 0, 0]);
        want.extend_from_slice(b"org.freedesktop.DBus\0");
        want.extend_from_slice(&[0, 0, 0]);
        // INTERFACE
        want.extend_from_slice(&[2, 1, b's', 0, 20, 0, 0, 0]);
        want.extend_from_slice(b"org.freedesktop.DBus\0");
        want.extend_from_slice(&[0, 0, 0]);
        // MEMBER "Hello", then padding to 8 before the (empty) body
        want.extend_from_slice(&[3, 1, b's', 0, 5, 0, 0, 0]);
        want.extend_from_slice(b"Hello\0");
        want.extend_from_slice(&[0, 0]);
        assert_eq!(got, want);
        assert_eq!(u32_at(&got, 12, true) as usize, got.len() - 16 - 2);
    }

    #[test]
    fn method_call_with_arguments() {
        let got = method_call(7, FIREWALLD, &["trusted", "10.88.0.5/32"], NO_AUTO_START);
        let fields_end = 16 + u32_at(&got, 12, true) as usize;
        let body = &got[align(fields_end, 8)..];
        let mut want = vec![7, 0, 0, 0];
        want.extend_from_slice(b"trusted\0");
        want.extend_from_slice(&[12, 0, 0, 0]);
        want.extend_from_slice(b"10.88.0.5/32\0");
        assert_eq!(body, &want[..]);
        assert_eq!(u32_at(&got, 4, true) as usize, want.len());
        assert_eq!(u32_at(&got, 8, true), 7);
        // The signature field ends the header: "g" "ss".
        assert_eq!(&got[fields_end - 8..fields_end], &[8, 1, b'g', 0, 2, b's', b's', 0][..]);
    }

    fn reply(kind: u8, little: bool, fields: &[(u8, &str, &str)], body: &[u8]) -> Vec<u8> {
        let u32b = |v: u32| if little { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut m = vec![if little { b'l' } else { b'B' }, kind, 1, 1];
        m.extend_from_slice(&u32b(body.len() as u32));
        m.extend_from_slice(&u32b(9));
        m.extend_from_slice(&[0; 4]);
        for (code, ty, v) in fields {
            m.resize(align(m.len(), 8), 0);
            m.extend_from_slice(&[*code, 1, ty.as_bytes()[0], 0]);
            match *ty {
                "u" => {
                    m.resize(align(m.len(), 4), 0);
                    m.extend_from_slice(&u32b(v.parse().unwrap()));
                }
                "g" => {
                    m.push(v.len() as u8);
                    m.extend_from_slice(v.as_bytes());
                    m.push(0);
                }
                _ => {
                    m.resize(align(m.len(), 4), 0);
                    m.extend_from_slice(&u32b(v.len() as u32));
                    m.extend_from_slice(v.as_bytes());
                    m.push(0);
                }
            }
        }
        let fl = u32b((m.len() - 16) as u32);
        m[12..16].copy_from_slice(&fl);
        m.resize(align(m.len(), 8), 0);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn replies_in_either_byte_order() {
        for little in [true, false] {
            let s = |v: u32| if little { v.to_le_bytes() } else { v.to_be_bytes() };
            let mut body = s(7).to_vec();
            body.extend_from_slice(b"trusted\0");
            let m = reply(
                METHOD_RETURN,
                little,
                &[(FIELD_REPLY_SERIAL, "u", "3"), (7, "s", ":1.0"), (FIELD_SIGNATURE, "g", "s")],
                &body,
            );
            let h = parse_header(&m).unwrap().unwrap();
            assert_eq!(h.reply_serial, Some(3));
            assert_eq!(first_arg(&m[h.body..], &h.signature, h.little).unwrap(), Reply::Str("trusted".into()));

            let m = reply(METHOD_RETURN, little, &[(FIELD_REPLY_SERIAL, "u", "4"), (FIELD_SIGNATURE, "g", "b")], &s(1));
            let h = parse_header(&m).unwrap().unwrap();
            assert_eq!(first_arg(&m[h.body..], &h.signature, h.little).unwrap(), Reply::Bool(true));
        }
    }

    #[test]
    fn error_replies_and_signals() {
        let text = "ZONE_ALREADY_SET: 10.0.0.1";
        let mut body = (text.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(text.as_bytes());
        body.push(0);
        let m = reply(
            ERROR,
            true,
            &[
                (FIELD_ERROR_NAME, "s", "org.fedoraproject.FirewallD1.Exception"),
                (FIELD_REPLY_SERIAL, "u", "2"),
                (FIELD_SIGNATURE, "g", "s"),
            ],
            &body,
        );
        let h = parse_header(&m).unwrap().unwrap();
        assert_eq!(h.error_name.as_deref(), Some("org.fedoraproject.FirewallD1.Exception"));
        assert_eq!(
            first_arg(&m[h.body..], &h.signature, h.little).unwrap(),
            Reply::Str("ZONE_ALREADY_SET: 10.0.0.1".into())
        );
        // A signal is not a reply.
        let sig = reply(4, true, &[(FIELD_MEMBER, "s", "NameAcquired")], &[]);
        assert!(parse_header(&sig).unwrap().is_none());
        // Truncated input is an error, not a panic.
        let short = &m[..m.len() - 10];
        let h = parse_header(short).unwrap().unwrap();
        assert!(first_arg(&short[h.body..], &h.signature, h.little).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(unescape("/run/dbus/system%5fbus"), b"/run/dbus/system_bus");
        assert_eq!(unescape("/a%zz%4"), b"/a%zz%4");
        let e = connect("tcp:host=localhost,port=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(matches!(Bus::open("unix:path=/nonexistent/bus"), Err(DbusError::Connect { .. })));
    }
}
