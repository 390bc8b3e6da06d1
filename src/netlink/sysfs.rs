//! A link's operational state and MAC as sysfs shows them: read without the RTNL lock.
//!
//! Once a container's end of a veth pair comes up, the kernel's IPv6 worker configures it and
//! sends its first router solicitation and multicast listener reports, which a bridge floods to
//! every port, all under the RTNL lock. A link request (RTM_GETLINK takes that lock) made then
//! waits for the flood: 1.6–2.5 ms on a bridge of 250 pods. `/sys/class/net/<link>/` reads the
//! same fields without it. (Subscribing to the kernel's link announcements would also do, but
//! while anyone listens the kernel builds an announcement of every link change on the node and
//! copies it to each listener: many pods set up at once paid a tenth more CPU for that.)
//!
//! The directory lists the links of the namespace that mounted /sys, which need not be the
//! caller's: an entry counts only when its `ifindex` is the link's, else the caller asks the
//! kernel.

use nix::fcntl::OFlag;
use std::fs::File;
use std::path::Path;

/// What sysfs shows of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsLink {
    /// `operstate` is `up`.
    pub oper_up: bool,
    /// `address`, as the kernel formats it (lower-case hex, colons).
    pub mac: String,
}

/// The link `name` with index `index`, as sysfs shows it; None when sysfs has no such link of
/// that index (another namespace's /sys, or none mounted) or cannot be read.
pub fn read(name: &str, index: u32) -> Option<SysfsLink> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let path = format!("/sys/class/net/{name}");
    let dir = crate::util::fs::open(Path::new(&path), OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0).ok()?;
    if attribute(&dir, "ifindex")?.parse::<u32>().ok()? != index {
        return None;
    }
    let oper_up = attribute(&dir, "operstate")? == "up";
    let mac = attribute(&dir, "address")?;
    Some(SysfsLink { oper_up, mac })
}

/// One attribute file's content, without its line break.
fn attribute(dir: &File, file: &str) -> Option<String> {
    let fd = crate::util::fs::open_in(dir, Path::new(file), OFlag::O_RDONLY, 0).ok()?;
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&fd, &mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_links() {
        assert_eq!(read("", 1), None);
        assert_eq!(read("../lo", 1), None);
        assert_eq!(read("..", 1), None);
        assert_eq!(read("no-such-link-here", 1), None);
    }

    #[test]
    fn agrees_with_the_kernel_in_this_namespace() {
        // /sys is the test's own namespace's: compare with what netlink says of `lo`.
        let Ok(nl) = crate::netlink::Netlink::open() else { return };
        let Ok(Some(lo)) = nl.link_by_name("lo") else { return };
        let Some(seen) = read("lo", lo.index) else {
            eprintln!("skipping: /sys does not show this namespace's links");
            return;
        };
        assert_eq!(seen.mac, lo.mac_string());
        assert_eq!(read("lo", lo.index + 1000), None, "another index is another link");
    }
}
