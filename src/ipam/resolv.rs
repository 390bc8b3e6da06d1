//! resolv.conf, read into a result's `dns` (nameserver, domain, search, options).

use super::IpamError;
use crate::cni::result::Dns;
use std::path::Path;

/// Parse resolv.conf text. Lines starting with `#` or `;` are comments; unknown keys and
/// keys without a value are ignored.
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [key, first, ..] = fields[..] else { continue };
        let rest = fields[1..].iter().map(|s| s.to_string());
        match key {
            "nameserver" => dns.nameservers.push(first.to_string()),
            "domain" => dns.domain = first.to_string(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

/// Read `path`; bytes that are not UTF-8 (a comment in another encoding) do not fail it.
pub fn load(path: &Path) -> Result<Dns, IpamError> {
    std::fs::read(path).map(|b| parse(&String::from_utf8_lossy(&b))).map_err(|e| IpamError::store("open", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let dns = parse(
            "# comment\n; also comment\n\nnameserver 10.1.2.3\n  nameserver   2001:db8::53 extra\n\
             domain example.com\nsearch a.example b.example\nsearch c.example\noptions ndots:5 rotate\n\
             nameserver\nsortlist 10.0.0.0/8\n",
        );
        assert_eq!(dns.nameservers, vec!["10.1.2.3", "2001:db8::53"]);
        assert_eq!(dns.domain, "example.com");
        assert_eq!(dns.search, vec!["a.example", "b.example", "c.example"]);
        assert_eq!(dns.options, vec!["ndots:5", "rotate"]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_read_around() {
        let path = std::env::temp_dir().join(format!("cnibox-resolv-{}", std::process::id()));
        std::fs::write(&path, b"# caf\xe9\nnameserver 10.0.0.53\n").unwrap();
        let dns = load(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(dns.unwrap().nameservers, vec!["10.0.0.53"]);
    }

    #[test]
    fn missing_file_names_it() {
        let e = load(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert!(e.to_string().starts_with("open /nonexistent/resolv.conf: "), "{e}");
    }
}
