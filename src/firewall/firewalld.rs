//! firewalld's zones, over D-Bus: the firewall plugin's `firewalld` backend, and its default
//! where firewalld runs. A container's addresses become sources (`<ip>/32`, `<ip>/128`) of a
//! zone (`trusted` unless configured), so firewalld's own forward and input chains let them
//! through, as the reference plugin does. firewalld keeps these in its runtime configuration
//! only: a reload or restart of firewalld drops them, as it does the reference's.

use crate::dbus::{Bus, DbusError, Method, Reply};

const NAME: &str = "org.fedoraproject.FirewallD1";
const PATH: &str = "/org/fedoraproject/FirewallD1";
const ZONE_IFACE: &str = "org.fedoraproject.FirewallD1.zone";

/// Whether a firewalld error reply carries one of firewalld's error codes (its message starts
/// with the code: `ZONE_ALREADY_SET: 10.88.0.5/32`).
fn is_code(e: &DbusError, code: &str) -> bool {
    matches!(e, DbusError::Remote { message, .. } if message.split(':').next().map(str::trim) == Some(code))
}

fn not_running() -> DbusError {
    DbusError::NotRunning(format!("firewalld ({NAME})"))
}

pub struct Firewalld {
    bus: Bus,
}

/// A zone name as the config gives it: firewalld's own are letters, digits, `-`, `_` and `/`;
/// control characters (a NUL would end the string on the bus) are refused.
pub fn valid_zone(zone: &str) -> bool {
    !zone.is_empty() && zone.len() <= 255 && !zone.chars().any(char::is_control)
}

impl Firewalld {
    /// firewalld on the system bus, if it runs there. No bus, or one without firewalld, is None.
    pub fn running() -> Option<Firewalld> {
        let mut bus = Bus::system().ok()?;
        bus.has_owner(NAME).ok()?.then_some(Firewalld { bus })
    }

    /// firewalld, required, where it runs: an error names what is missing.
    pub fn connect() -> Result<Firewalld, DbusError> {
        let mut bus = Bus::system()?;
        if !bus.has_owner(NAME)? {
            return Err(not_running());
        }
        Ok(Firewalld { bus })
    }

    /// firewalld, required, and started by the bus when it does not run (D-Bus activation, as
    /// the reference's calls start it): for a config that names the backend, so that a pod
    /// added while firewalld is still starting at boot waits for it instead of failing. An
    /// error says why it could not be started.
    pub fn connect_starting() -> Result<Firewalld, DbusError> {
        let mut bus = Bus::system()?;
        if !bus.has_owner(NAME)? {
            bus.start(NAME).map_err(|e| match e {
                DbusError::NotRunning(_) => not_running(),
                other => DbusError::Protocol(format!("{}; the bus could not start it: {other}", not_running())),
            })?;
        }
        Ok(Firewalld { bus })
    }

    /// A zone method; a connection that broke in an earlier call (a timeout) is made again.
    fn zone_call(&mut self, member: &str, args: &[&str]) -> Result<Reply, DbusError> {
        if self.bus.is_broken() {
            self.bus = Bus::system()?;
        }
        self.bus.call(Method { dest: NAME, path: PATH, iface: ZONE_IFACE, member }, args)
    }

    /// Put `source` into `zone`: true if this call added it, false if it was there already.
    pub fn add_source(&mut self, zone: &str, source: &str) -> Result<bool, DbusError> {
        match self.zone_call("addSource", &[zone, source]) {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, "ZONE_ALREADY_SET") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Take `source` out of `zone`. One in no zone is fine (None); one bound to another zone, or
    /// a zone that no longer exists, is not ours to change: firewalld's answer comes back
    /// (Some) for the caller to note.
    pub fn remove_source(&mut self, zone: &str, source: &str) -> Result<Option<String>, DbusError> {
        match self.zone_call("removeSource", &[zone, source]) {
            Ok(_) => Ok(None),
            Err(e) if is_code(&e, "UNKNOWN_SOURCE") => Ok(None),
            Err(e) if is_code(&e, "ZONE_CONFLICT") || is_code(&e, "INVALID_ZONE") => Ok(Some(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Whether `source` is in `zone`.
    pub fn has_source(&mut self, zone: &str, source: &str) -> Result<bool, DbusError> {
        match self.zone_call("querySource", &[zone, source])? {
            Reply::Bool(b) => Ok(b),
            other => Err(DbusError::Protocol(format!("querySource answered {other:?}, not a boolean"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_zones() {
        let e =
            |m: &str| DbusError::Remote { name: "org.fedoraproject.FirewallD1.Exception".into(), message: m.into() };
        assert!(is_code(&e("ZONE_ALREADY_SET: 10.88.0.5/32"), "ZONE_ALREADY_SET"));
        assert!(is_code(&e("UNKNOWN_SOURCE"), "UNKNOWN_SOURCE"));
        assert!(!is_code(&e("ZONE_CONFLICT: 10.88.0.5/32"), "ZONE_ALREADY_SET"));
        assert!(!is_code(&DbusError::Protocol("ZONE_ALREADY_SET".into()), "ZONE_ALREADY_SET"));
        assert!(valid_zone("trusted") && valid_zone("pods-1/x"));
        assert!(!valid_zone("") && !valid_zone("a\0b") && !valid_zone("a\nb"));
    }
}
