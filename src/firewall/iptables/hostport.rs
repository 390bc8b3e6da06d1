//! portmap's iptables backend: the reference's `nat` layout, rule for rule.
//!
//! ```text
//! PREROUTING, OUTPUT  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! CNI-HOSTPORT-DNAT   -m comment --comment "dnat name: \"<net>\" id: \"<cid>\"" -m multiport
//!                     -p tcp --destination-ports 8080,8081 [conditions] -j CNI-DN-<hash>
//! CNI-DN-<hash>       -p tcp --dport 8080 [-d <hostIP>] -s <pod net> -j CNI-HOSTPORT-SETMARK  (snat: hairpin)
//!                     -p tcp --dport 8080 [-d <hostIP>] -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK  (snat, IPv4)
//!                     -p tcp --dport 8080 [-d <hostIP>] -j DNAT --to-destination <pod>:80
//! CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
//! POSTROUTING         -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ  (first)
//! CNI-HOSTPORT-MASQ   -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! ```
//!
//! The container's chain is rebuilt on every ADD (its jumps deleted, the chain flushed, both
//! written again in the same restore), so an ADD after a changed config never keeps old rules.
//! DEL and GC remove it as they remove the reference's own (`teardown_portmap`).

use super::{Layout, NAT, Removal, Rule, apply, chain_name, commented, teardown_portmap, words};
use ipnet::IpNet;
use std::net::IpAddr;

const TOP: &str = "CNI-HOSTPORT-DNAT";
const SETMARK: &str = "CNI-HOSTPORT-SETMARK";
const MASQ: &str = "CNI-HOSTPORT-MASQ";
/// iptables keeps at most 255 bytes of a comment.
const MAX_COMMENT: usize = 255;
/// multiport takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

/// One port mapping, as the portmap plugin validated it (its own type for every backend).
#[derive(Debug, Clone, PartialEq)]
pub struct PortMap {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// None: every local address (no hostIP, or an unspecified one).
    pub host_ip: Option<IpAddr>,
    /// The family the hostIP restricts the mapping to.
    pub v6_only: Option<bool>,
}

/// What ADD writes for one container.
pub struct HostPorts<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub snat: bool,
    pub masq_all: bool,
    pub mark_bit: u32,
    /// `externalSetMarkChain`: mark through this chain (kube-proxy's KUBE-MARK-MASQ) instead of
    /// setting up SETMARK and MASQ.
    pub external_set_mark: Option<&'a str>,
    pub conditions_v4: &'a [String],
    pub conditions_v6: &'a [String],
    pub mappings: &'a [PortMap],
}

/// Trimmed with "..." as the reference trims it, but to what iptables accepts (the reference's
/// 253 bytes and "..." are one too many), at a character boundary.
fn trim_comment(s: String) -> String {
    if s.len() <= MAX_COMMENT {
        return s;
    }
    let mut end = MAX_COMMENT - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

impl<'a> HostPorts<'a> {
    fn dn_chain(&self) -> String {
        chain_name(self.network, self.container_id, "DN-")
    }

    fn mark(&self) -> String {
        let v = 1u32 << self.mark_bit;
        format!("{v:#x}/{v:#x}")
    }

    /// The layout for the family of `cont` (the pod's address with its prefix, as in prevResult).
    fn layout<'c>(&'c self, cont: IpNet, dn: &'c str, setmark: &'c str) -> Layout<'c> {
        let v6 = cont.addr().is_ipv6();
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        if self.snat && self.external_set_mark.is_none() {
            chains.extend([SETMARK, MASQ]);
            let mark = self.mark();
            rules.push(Rule {
                chain: SETMARK,
                first: false,
                words: words(&[
                    "-m",
                    "comment",
                    "--comment",
                    "CNI portfwd masquerade mark",
                    "-j",
                    "MARK",
                    "--set-xmark",
                    &mark,
                ]),
            });
            rules.push(Rule {
                chain: MASQ,
                first: false,
                words: words(&["-m", "mark", "--mark", &mark, "-j", "MASQUERADE"]),
            });
            rules.push(Rule {
                chain: "POSTROUTING",
                first: true,
                words: commented(&[], "CNI portfwd requiring masquerade", MASQ),
            });
        }
        chains.push(TOP);
        for entry in ["PREROUTING", "OUTPUT"] {
            rules.push(Rule {
                chain: entry,
                first: false,
                words: words(&["-m", "addrtype", "--dst-type", "LOCAL", "-j", TOP]),
            });
        }
        // The container's chain: one rule set per mapping of this family, marks first.
        let masq_from = match (self.masq_all, v6) {
            (false, _) => cont.to_string(),
            (true, false) => "0.0.0.0/0".to_string(),
            (true, true) => "::/0".to_string(),
        };
        for m in self.mappings.iter().filter(|m| m.v6_only.is_none_or(|f| f == v6)) {
            let mut base = words(&["-p", &m.protocol, "--dport", &m.host_port.to_string()]);
            if let Some(ip) = m.host_ip {
                base.extend(words(&["-d", &ip.to_string()]));
            }
            let with = |tail: &[&str]| {
                let mut w = base.clone();
                w.extend(words(tail));
                w
            };
            if self.snat {
                rules.push(Rule { chain: dn, first: false, words: with(&["-s", &masq_from, "-j", setmark]) });
                if !v6 && !self.masq_all {
                    rules.push(Rule { chain: dn, first: false, words: with(&["-s", "127.0.0.1", "-j", setmark]) });
                }
            }
            let to = match cont.addr() {
                IpAddr::V4(a) => format!("{a}:{}", m.container_port),
                IpAddr::V6(a) => format!("[{a}]:{}", m.container_port),
            };
            rules.push(Rule { chain: dn, first: false, words: with(&["-j", "DNAT", "--to-destination", &to]) });
        }
        // The jumps to it: every mapping's port (of either family), by protocol, 15 to a rule.
        let comment = trim_comment(format!("dnat name: \"{}\" id: \"{}\"", self.network, self.container_id));
        let conditions = if v6 { self.conditions_v6 } else { self.conditions_v4 };
        // In the reference's (sorted) order of the protocols the plugin accepts.
        for proto in ["sctp", "tcp", "udp"] {
            let ports: Vec<String> =
                self.mappings.iter().filter(|m| m.protocol == proto).map(|m| m.host_port.to_string()).collect();
            for group in ports.chunks(MULTIPORT_MAX) {
                let joined = group.join(",");
                let mut w = words(&["-m", "comment", "--comment", &comment, "-m", "multiport", "-p", proto]);
                w.extend(words(&["--destination-ports", &joined]));
                w.extend(conditions.iter().cloned());
                w.extend(words(&["-j", dn]));
                rules.push(Rule { chain: TOP, first: false, words: w });
            }
        }
        Layout { chains, reset: vec![(dn, TOP)], rules }
    }

    /// Write the rules for the container's addresses (IPv4, then IPv6); a family that fails
    /// leaves the container's chains of the others removed again.
    pub fn forward(&self, v4: Option<IpNet>, v6: Option<IpNet>) -> Result<(), String> {
        let dn = self.dn_chain();
        let setmark = self.external_set_mark.unwrap_or(SETMARK);
        let pick = |want_v4: bool| if want_v4 { v4 } else { v6 };
        let layout = |fam_v4| pick(fam_v4).map(|c| self.layout(c, &dn, setmark));
        let undo = || drop(teardown_portmap(self.network, self.container_id, Removal::Ours));
        apply(NAT, "portmap's iptables backend", &layout, &undo).map_err(|f| f.msg)
    }

    /// The container's chain holds its rules and is jumped to as ADD left it. Rules are
    /// counted, and the DNAT targets compared, rather than compared word for word: iptables
    /// lists matches in an order of its own.
    pub fn check(&self, v4: Option<IpNet>, v6: Option<IpNet>) -> Result<(), String> {
        let dn = self.dn_chain();
        let setmark = self.external_set_mark.unwrap_or(SETMARK);
        for (cont, name) in [(v4, "iptables"), (v6, "ip6tables")] {
            let Some(cont) = cont else { continue };
            let listing = super::Listing::of(name, NAT)?;
            if !listing.has_chain(&dn) {
                return Err(format!("chain {dn} not found in {name} table nat"));
            }
            let layout = self.layout(cont, &dn, setmark);
            // As written: a rule the same as one before it is not written twice.
            let want = super::distinct(&layout.rules);
            let count = |chain: &str| want.iter().filter(|r| r.chain == chain).count();
            let have = listing.rules(&dn).count();
            let jumps = super::jumps_to(&listing, &dn, TOP).len();
            if have != count(&dn) || jumps != count(TOP) {
                return Err(format!(
                    "{name}: chain {dn} holds {have} rules and is jumped to {jumps} times, expected {} and {}",
                    count(&dn),
                    count(TOP)
                ));
            }
            let targets = |it: &mut dyn Iterator<Item = Vec<String>>| -> Vec<String> {
                it.filter_map(|w| super::arg_after(&w, "--to-destination").map(str::to_string)).collect()
            };
            let listed = targets(&mut listing.rules(&dn).map(super::split));
            let wanted = targets(&mut want.iter().filter(|r| r.chain == dn).map(|r| r.words.clone()));
            let times = |v: &[String], t: &String| v.iter().filter(|x| *x == t).count();
            let same = listed.len() == wanted.len() && wanted.iter().all(|t| times(&listed, t) == times(&wanted, t));
            if !same {
                return Err(format!(
                    "{name}: DNAT targets in {dn} are {}, expected {}",
                    listed.join(" "),
                    wanted.join(" ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Listing, restore_input};
    use super::*;

    #[test]
    fn layout_as_the_reference_writes_it() {
        let maps = [
            PortMap { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None, v6_only: None },
            PortMap {
                host_port: 5353,
                container_port: 53,
                protocol: "udp".into(),
                host_ip: Some("192.0.2.1".parse().unwrap()),
                v6_only: Some(false),
            },
        ];
        let conds = vec!["!".to_string(), "-s".to_string(), "10.0.0.0/8".to_string()];
        let hp = HostPorts {
            network: "net",
            container_id: "cid",
            snat: true,
            masq_all: false,
            mark_bit: 13,
            external_set_mark: None,
            conditions_v4: &conds,
            conditions_v6: &[],
            mappings: &maps,
        };
        let dn = hp.dn_chain();
        let cont: IpNet = "10.88.0.5/16".parse().unwrap();
        let layout = hp.layout(cont, &dn, SETMARK);
        // A table holding the shared chains and a stale chain of this container.
        let listing = Listing {
            lines: format!(
                "-P PREROUTING ACCEPT\n-N {TOP}\n-N {SETMARK}\n-N {MASQ}\n-N {dn}\n\
                 -A PREROUTING -m addrtype --dst-type LOCAL -j {TOP}\n\
                 -A OUTPUT -m addrtype --dst-type LOCAL -j {TOP}\n\
                 -A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j {MASQ}\n\
                 -A {TOP} -p tcp -m comment --comment \"dnat name: \\\"net\\\" id: \\\"cid\\\"\" -m multiport --dports 9 -j {dn}\n\
                 -A {SETMARK} -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000\n\
                 -A {MASQ} -m mark --mark 0x2000/0x2000 -j MASQUERADE\n\
                 -A {dn} -p tcp -m tcp --dport 9 -j DNAT --to-destination 10.88.0.5:9"
            )
            .lines()
            .map(str::to_string)
            .collect(),
        };
        let want = format!(
            "*nat\n\
             -D {TOP} -p tcp -m comment --comment \"dnat name: \\\"net\\\" id: \\\"cid\\\"\" -m multiport --dports 9 -j {dn}\n\
             :{dn} - [0:0]\n\
             -A {dn} -p tcp --dport 8080 -s 10.88.0.5/16 -j {SETMARK}\n\
             -A {dn} -p tcp --dport 8080 -s 127.0.0.1 -j {SETMARK}\n\
             -A {dn} -p tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80\n\
             -A {dn} -p udp --dport 5353 -d 192.0.2.1 -s 10.88.0.5/16 -j {SETMARK}\n\
             -A {dn} -p udp --dport 5353 -d 192.0.2.1 -s 127.0.0.1 -j {SETMARK}\n\
             -A {dn} -p udp --dport 5353 -d 192.0.2.1 -j DNAT --to-destination 10.88.0.5:53\n\
             -A {TOP} -m comment --comment \"dnat name: \\\"net\\\" id: \\\"cid\\\"\" -m multiport -p tcp --destination-ports 8080 ! -s 10.0.0.0/8 -j {dn}\n\
             -A {TOP} -m comment --comment \"dnat name: \\\"net\\\" id: \\\"cid\\\"\" -m multiport -p udp --destination-ports 5353 ! -s 10.0.0.0/8 -j {dn}\n\
             COMMIT\n"
        );
        assert_eq!(restore_input(NAT, &listing, &layout), want);

        // IPv6: no localhost mark, bracketed target, the hostIP mapping left out.
        let cont6: IpNet = "fd88::5/64".parse().unwrap();
        let l6 = hp.layout(cont6, &dn, SETMARK);
        let dn_rules: Vec<String> = l6.rules.iter().filter(|r| r.chain == dn).map(|r| r.words.join(" ")).collect();
        assert_eq!(
            dn_rules,
            vec![
                format!("-p tcp --dport 8080 -s fd88::5/64 -j {SETMARK}"),
                "-p tcp --dport 8080 -j DNAT --to-destination [fd88::5]:80".into()
            ]
        );
    }

    #[test]
    fn external_mark_chain_and_masq_all() {
        let maps =
            [PortMap { host_port: 80, container_port: 80, protocol: "tcp".into(), host_ip: None, v6_only: None }];
        let hp = HostPorts {
            network: "n",
            container_id: "c",
            snat: true,
            masq_all: true,
            mark_bit: 13,
            external_set_mark: Some("KUBE-MARK-MASQ"),
            conditions_v4: &[],
            conditions_v6: &[],
            mappings: &maps,
        };
        let dn = hp.dn_chain();
        let l = hp.layout("10.1.0.2/24".parse().unwrap(), &dn, "KUBE-MARK-MASQ");
        assert!(!l.chains.contains(&SETMARK) && !l.chains.contains(&MASQ));
        let all: Vec<String> = l.rules.iter().map(|r| format!("{} {}", r.chain, r.words.join(" "))).collect();
        assert!(all.contains(&format!("{dn} -p tcp --dport 80 -s 0.0.0.0/0 -j KUBE-MARK-MASQ")), "{all:?}");
        assert_eq!(all.iter().filter(|r| r.contains("127.0.0.1")).count(), 0);
    }

    #[test]
    fn comments_trimmed_as_the_reference_trims_them() {
        assert_eq!(trim_comment("x".repeat(255)), "x".repeat(255));
        assert_eq!(trim_comment("x".repeat(300)), format!("{}...", "x".repeat(252)));
        let t = trim_comment(format!("{}é", "x".repeat(252)) + &"y".repeat(10));
        assert!(t.ends_with("...") && t.len() <= 255);
    }
}
