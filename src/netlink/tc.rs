//! Traffic control for bandwidth shaping: token bucket (TBF) root qdiscs, ingress qdiscs, the
//! u32 match-all filter that redirects a device's ingress to an ifb, and ifb links.
//!
//! netlink-packet-route has no TBF type, so its options are built here by hand: a
//! `struct tc_tbf_qopt` under TCA_TBF_PARMS, plus TCA_TBF_RATE64 for rates of 2^32 bytes/s and
//! more. The rate spec's link layer is ethernet, as `tc` sends it: the kernel then needs no rate
//! table, and reports the qdisc back with exactly the bytes it was given.

use super::{Error, Link, Netlink};
use rtnetlink::LinkIfb;
use rtnetlink::LinkUnspec;

use rtnetlink::packet_core::{DefaultNla, Emitable, NLM_F_CREATE, NLM_F_EXCL, Nla, NlasIterator};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
pub use rtnetlink::packet_route::tc::TcHandle;
use rtnetlink::packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirror, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32, TcFilterU32Option, TcHeader, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};

const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// `sizeof(struct tc_tbf_qopt)`: two 12-byte rate specs, then limit, buffer and mtu.
const TBF_QOPT_LEN: usize = 36;
const ETH_P_ALL: u16 = 0x0003;
/// The kernel keeps a TBF buffer as nanoseconds in a u32: ticks beyond this are clamped.
pub const TBF_MAX_BUFFER_TICKS: u32 = u32::MAX >> 6;

/// The root qdisc handle bandwidth shapes with (`1:`).
pub const TBF_HANDLE: TcHandle = TcHandle { major: 1, minor: 0 };
/// The ingress qdisc's handle (`ffff:`).
pub const INGRESS_HANDLE: TcHandle = TcHandle { major: 0xffff, minor: 0 };

/// A token bucket as the kernel takes and reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    /// Bytes per second.
    pub rate: u64,
    /// The bucket, in psched ticks.
    pub buffer: u32,
    /// Bytes that may queue waiting for tokens.
    pub limit: u32,
}

impl Tbf {
    /// The `tc_tbf_qopt`: rate spec (cell_log, linklayer, overhead, cell_align, mpu, rate),
    /// an empty peak rate spec, limit, buffer, mtu; host byte order.
    fn qopt(&self) -> [u8; TBF_QOPT_LEN] {
        let mut b = [0u8; TBF_QOPT_LEN];
        b[1] = TC_LINKLAYER_ETHERNET;
        b[8..12].copy_from_slice(&u32::try_from(self.rate).unwrap_or(u32::MAX).to_ne_bytes());
        b[24..28].copy_from_slice(&self.limit.to_ne_bytes());
        b[28..32].copy_from_slice(&self.buffer.to_ne_bytes());
        b
    }

    /// The attributes inside TCA_OPTIONS.
    pub fn options(&self) -> Vec<TcOption> {
        let mut v = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, self.qopt().to_vec()))];
        if self.rate > u64::from(u32::MAX) {
            v.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, self.rate.to_ne_bytes().to_vec())));
        }
        v
    }

    /// Parse the payload of a TBF qdisc's TCA_OPTIONS.
    pub fn parse(payload: &[u8]) -> Result<Tbf, String> {
        let mut parms = None;
        let mut rate64 = None;
        for nla in NlasIterator::new(payload) {
            let nla = nla.map_err(|e| format!("malformed tbf options: {e}"))?;
            match nla.kind() {
                TCA_TBF_PARMS => parms = Some(nla.value().to_vec()),
                TCA_TBF_RATE64 => {
                    let v: [u8; 8] = nla.value().try_into().map_err(|_| "malformed TCA_TBF_RATE64".to_string())?;
                    rate64 = Some(u64::from_ne_bytes(v));
                }
                _ => {}
            }
        }
        let p = parms.ok_or("tbf options without TCA_TBF_PARMS")?;
        if p.len() < TBF_QOPT_LEN {
            return Err(format!("TCA_TBF_PARMS too short: {} bytes", p.len()));
        }
        let word = |at: usize| u32::from_ne_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        Ok(Tbf { rate: rate64.unwrap_or(u64::from(word(8))), limit: word(24), buffer: word(28) })
    }
}

/// The microseconds-to-ticks factor of the kernel's packet scheduler clock, from
/// /proc/net/psched (15.625 on every kernel since 2.6.31 when unreadable).
pub fn psched_tick_in_usec() -> f64 {
    std::fs::read_to_string("/proc/net/psched").ok().and_then(|s| parse_psched(&s)).unwrap_or(1000.0 / 64.0)
}

fn parse_psched(s: &str) -> Option<f64> {
    let v: Vec<u64> = s.split_whitespace().take(4).map(|w| u64::from_str_radix(w, 16).ok()).collect::<Option<_>>()?;
    let [mut t2us, us2t, clock_res, _] = v[..] else { return None };
    if us2t == 0 {
        return None;
    }
    // Old kernels with a nanosecond clock report their factors differently.
    if clock_res == 1_000_000_000 {
        t2us = us2t;
    }
    Some(t2us as f64 / us2t as f64 * (clock_res as f64 / 1_000_000.0))
}

/// A qdisc as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub index: u32,
    pub handle: TcHandle,
    pub parent: TcHandle,
    pub kind: String,
    /// The parameters of a `tbf` qdisc.
    pub tbf: Option<Tbf>,
}

impl Qdisc {
    fn from_message(m: &TcMessage) -> Qdisc {
        let mut kind = String::new();
        let mut options = None;
        for a in &m.attributes {
            match a {
                TcAttribute::Kind(k) => kind = k.clone(),
                TcAttribute::Options(o) => options = Some(options_payload(o)),
                _ => {}
            }
        }
        let tbf = match (kind.as_str(), options) {
            ("tbf", Some(p)) => Tbf::parse(&p).ok(),
            _ => None,
        };
        Qdisc { index: m.header.index as u32, handle: m.header.handle, parent: m.header.parent, kind, tbf }
    }

    /// The root qdisc of its device.
    pub fn is_root(&self) -> bool {
        self.parent == TcHandle::ROOT
    }
}

/// The bytes inside TCA_OPTIONS. For kinds it does not know, netlink-packet-route keeps the
/// whole TCA_OPTIONS attribute as one opaque entry; otherwise the options are re-emitted.
fn options_payload(opts: &[TcOption]) -> Vec<u8> {
    if let [TcOption::Other(nla)] = opts
        && nla.kind() == TCA_OPTIONS
    {
        let mut v = vec![0u8; nla.value_len()];
        nla.emit_value(&mut v);
        return v;
    }
    let mut v = vec![0u8; opts.buffer_len()];
    opts.emit(&mut v);
    v
}

/// A u32 filter's mirred redirect, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The filter's priority.
    pub priority: u16,
    /// The filter's protocol (host byte order; 3 is every protocol).
    pub protocol: u16,
    /// The device packets are sent to.
    pub target: u32,
    pub egress: bool,
}

fn redirects_of(m: &TcMessage) -> Vec<Redirect> {
    let priority = (m.header.info >> 16) as u16;
    let protocol = u16::from_be((m.header.info & 0xffff) as u16);
    let mut out = Vec::new();
    for a in &m.attributes {
        let TcAttribute::Options(opts) = a else { continue };
        for o in opts {
            let TcOption::U32(TcFilterU32Option::Action(actions)) = o else { continue };
            for act in actions {
                for aa in &act.attributes {
                    let TcActionAttribute::Options(ao) = aa else { continue };
                    for x in ao {
                        if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) = x
                            && matches!(p.eaction, TcMirrorActionType::EgressRedir | TcMirrorActionType::IngressRedir)
                        {
                            let egress = p.eaction == TcMirrorActionType::EgressRedir;
                            out.push(Redirect { priority, protocol, target: p.ifindex, egress });
                        }
                    }
                }
            }
        }
    }
    out
}

/// An ifb link and its alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfbLink {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
}

fn tc_message(index: u32, handle: TcHandle, parent: TcHandle, info: u32, attributes: Vec<TcAttribute>) -> TcMessage {
    let header = TcHeader { index: index as i32, handle, parent, info, ..Default::default() };
    TcMessage::from_parts(header, attributes)
}

/// The request for a root TBF qdisc `1:` on the device `index`.
pub fn tbf_message(index: u32, tbf: &Tbf) -> TcMessage {
    let attrs = vec![TcAttribute::Kind("tbf".into()), TcAttribute::Options(tbf.options())];
    tc_message(index, TBF_HANDLE, TcHandle::ROOT, 0, attrs)
}

/// The request for the u32 filter on `index`'s ingress qdisc (priority 1, every protocol) that
/// matches every packet, classifies it as 1:1 and redirects it to the egress of `target`:
/// `tc filter add dev DEV parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1
/// action mirred egress redirect dev TARGET`.
pub fn redirect_filter_message(index: u32, target: u32) -> TcMessage {
    let mut mirred = TcMirror::default();
    mirred.generic.action = TcActionType::Stolen;
    mirred.eaction = TcMirrorActionType::EgressRedir;
    mirred.ifindex = target;
    let mut action = TcAction::default();
    action.tab = 1;
    action.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirred))]),
    ];
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![TcU32Key::default()];
    let options = vec![
        TcOption::U32(TcFilterU32Option::ClassId(TcHandle { major: 1, minor: 1 })),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
        TcOption::U32(TcFilterU32Option::Selector(sel)),
    ];
    // tcm_info: priority in the upper half, protocol in network byte order in the lower.
    let info = (1u32 << 16) | u32::from(ETH_P_ALL.to_be());
    let attrs = vec![TcAttribute::Kind(TcFilterU32::KIND.into()), TcAttribute::Options(options)];
    tc_message(index, TcHandle::UNSPEC, INGRESS_HANDLE, info, attrs)
}

impl Netlink {
    /// Every qdisc of `link`, as the kernel lists them.
    pub fn qdiscs(&self, link: &Link) -> Result<Vec<Qdisc>, Error> {
        let replies = self
            .dump(|| RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()))
            .map_err(|e| e.context(format!("failed to list qdiscs of \"{}\"", link.name)))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewQueueDiscipline(m) => Some(Qdisc::from_message(m)),
                _ => None,
            })
            .filter(|q| q.index == link.index)
            .collect())
    }

    fn new_qdisc(&self, msg: TcMessage, what: String) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.context(what))
    }

    /// Add a root TBF qdisc `1:` to `link`; an existing root qdisc of its own is an error.
    pub fn add_tbf(&self, link: &Link, tbf: &Tbf) -> Result<(), Error> {
        self.new_qdisc(tbf_message(link.index, tbf), format!("failed to add tbf qdisc to \"{}\"", link.name))
    }

    /// Add the ingress qdisc `ffff:` to `link`.
    pub fn add_ingress_qdisc(&self, link: &Link) -> Result<(), Error> {
        let msg =
            tc_message(link.index, INGRESS_HANDLE, TcHandle::INGRESS, 0, vec![TcAttribute::Kind("ingress".into())]);
        self.new_qdisc(msg, format!("failed to add ingress qdisc to \"{}\"", link.name))
    }

    /// Delete the qdisc of `link` at `parent`: the ingress qdisc `ffff:` for the ingress hook,
    /// else the root qdisc, only if it is `1:` (the kernel refuses a handle that differs, so a
    /// root qdisc someone else made stays).
    pub fn del_qdisc(&self, link: &Link, parent: TcHandle) -> Result<(), Error> {
        let (handle, what) =
            if parent == TcHandle::INGRESS { (INGRESS_HANDLE, "ingress") } else { (TBF_HANDLE, "root") };
        let msg = tc_message(link.index, handle, parent, 0, Vec::new());
        self.change(RouteNetlinkMessage::DelQueueDiscipline(msg), 0)
            .map_err(|e| e.context(format!("failed to delete {what} qdisc of \"{}\"", link.name)))
    }

    /// Redirect everything arriving on `from` to the egress of `to`, through a u32 filter on
    /// `from`'s ingress qdisc (which must exist).
    pub fn add_redirect_filter(&self, from: &Link, to: &Link) -> Result<(), Error> {
        self.change(
            RouteNetlinkMessage::NewTrafficFilter(redirect_filter_message(from.index, to.index)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|e| e.context(format!("failed to add filter redirecting \"{}\" to \"{}\"", from.name, to.name)))
    }

    /// The redirects of the u32 filters on `link`'s ingress qdisc.
    pub fn ingress_redirects(&self, link: &Link) -> Result<Vec<Redirect>, Error> {
        let query = || {
            RouteNetlinkMessage::GetTrafficFilter(tc_message(
                link.index,
                TcHandle::UNSPEC,
                INGRESS_HANDLE,
                0,
                Vec::new(),
            ))
        };
        let replies =
            self.dump(query).map_err(|e| e.context(format!("failed to list ingress filters of \"{}\"", link.name)))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewTrafficFilter(m) if m.header.index as u32 == link.index => {
                    Some(redirects_of(m))
                }
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// Create an ifb link, up, with `mtu` and `txqlen`, and label it with `alias` when given.
    /// If the alias cannot be set the link is removed again.
    pub fn create_ifb(&self, name: &str, mtu: u32, txqlen: u32, alias: Option<&str>) -> Result<(), Error> {
        let msg = LinkIfb::new(name).mtu(mtu).txqueuelen(txqlen).up().build();
        self.change(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.context(format!("failed to create ifb \"{name}\"")))?;
        let Some(alias) = alias else { return Ok(()) };
        // The kernel takes IFLA_IFALIAS only on an existing link.
        let set = match self.link_by_name(name)? {
            Some(l) => self
                .change(RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(l.index).alias(alias).build()), 0)
                .map_err(|e| e.context(format!("failed to set the alias of ifb \"{name}\""))),
            None => Err(Error::new(format!("failed to create ifb \"{name}\""), "it vanished after creation")),
        };
        if set.is_err()
            && let Ok(Some(l)) = self.link_by_name(name)
        {
            let _ = self.del_link(&l);
        }
        set
    }

    /// Every ifb link of this namespace.
    pub fn ifb_links(&self) -> Result<Vec<IfbLink>, Error> {
        self.dump_links(ifb_of)
    }
}

fn ifb_of(m: &LinkMessage) -> Option<IfbLink> {
    let mut is_ifb = false;
    let mut link = IfbLink { index: m.header.index, name: String::new(), alias: None };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::IfAlias(s) => link.alias = Some(s.clone()),
            LinkAttribute::LinkInfo(infos) => {
                is_ifb = infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Ifb)));
            }
            _ => {}
        }
    }
    is_ifb.then_some(link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Parseable;

    fn emit(msg: &TcMessage) -> Vec<u8> {
        let mut b = vec![0u8; msg.buffer_len()];
        msg.emit(&mut b);
        b
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// A tc header for device 3: family, padding, ifindex, handle, parent, info.
    fn header(handle: u32, parent: u32, info: u32) -> Vec<u8> {
        let mut h = vec![0u8, 0, 0, 0];
        for w in [3u32, handle, parent, info] {
            h.extend_from_slice(&w.to_ne_bytes());
        }
        h
    }

    // Setup, in a throwaway namespace (little endian, psched tick 15.625/us):
    //      ip link add d0 type veth peer name d1
    //      tc qdisc add dev d0 root handle 1: tbf rate 1mbit burst 10kb limit 13125
    // The kernel's reply to an RTM_GETQDISC dump, the qdisc's TCA_OPTIONS attribute:
    // TCA_TBF_PARMS { rate { linklayer ethernet, rate 125000 }, peakrate {}, limit 13125,
    // buffer 1280000 ticks (10240 bytes at 125000 bytes/s), mtu 0 }.
    const TBF_1MBIT: &str = "2c000200 28000100 00010000 00000000 48e80100 00000000 00000000 00000000
                             45330000 00881300 00000000";
    // Same, with `tc qdisc add dev d1 root handle 1: tbf rate 40gbit burst 5000000 limit 130000000`:
    // the 32-bit rate saturates and TCA_TBF_RATE64 carries 5e9 bytes/s; buffer 15624 ticks.
    const TBF_40GBIT: &str = "38000200 28000100 00010000 00000000 ffffffff 00000000 00000000 00000000
                              80a4bf07 083d0000 00000000 0c000400 00f2052a 01000000";

    fn check_tbf_golden(golden: &str, tbf: Tbf) {
        let opts = hex(golden);
        // The whole request: header, TCA_KIND "tbf", then exactly the kernel's TCA_OPTIONS.
        let mut want = header(0x0001_0000, 0xffff_ffff, 0);
        want.extend_from_slice(&hex("08000100 74626600"));
        want.extend_from_slice(&opts);
        let msg = tbf_message(3, &tbf);
        assert_eq!(emit(&msg), want);
        // Parse the kernel's bytes back, and emit them again.
        let parsed = TcMessage::parse(&want[..]).unwrap();
        let q = Qdisc::from_message(&parsed);
        assert_eq!((q.kind.as_str(), q.tbf, q.handle, q.is_root()), ("tbf", Some(tbf), TBF_HANDLE, true));
        // netlink-packet-route keeps an unknown kind's TCA_OPTIONS as one opaque attribute and
        // would nest it again on emit: the round trip goes through our own type.
        assert_eq!(emit(&tbf_message(q.index, &q.tbf.unwrap())), want);
        assert_eq!(Tbf::parse(&opts[4..]).unwrap(), tbf);
    }

    #[test]
    fn tbf_golden_bytes() {
        check_tbf_golden(TBF_1MBIT, Tbf { rate: 125_000, buffer: 1_280_000, limit: 13_125 });
    }

    #[test]
    fn tbf_golden_bytes_rate64() {
        check_tbf_golden(TBF_40GBIT, Tbf { rate: 5_000_000_000, buffer: 15_624, limit: 130_000_000 });
    }

    #[test]
    fn tbf_parse_errors() {
        assert!(Tbf::parse(&[]).unwrap_err().contains("TCA_TBF_PARMS"));
        assert!(Tbf::parse(&hex("08000100 00000000")).unwrap_err().contains("too short"));
        assert!(Tbf::parse(&hex("08000100 00")).is_err());
    }

    // Captured with `strace -e trace=sendmsg -xx` (d0 is ifindex 3, bwp0 ifindex 4):
    //      tc filter add dev d0 parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 \
    //          action mirred egress redirect dev bwp0
    // TCA_KIND "u32"; TCA_OPTIONS { TCA_U32_CLASSID 1:1, TCA_U32_ACT { 1: { TCA_ACT_KIND
    // "mirred", TCA_ACT_OPTIONS { TCA_MIRRED_PARMS { action stolen, eaction egress redirect,
    // ifindex 4 } } } }, TCA_U32_SEL { terminal, 1 key matching anything } }.
    const REDIRECT_U32: &str = "08000100 75333200 68000200
        08000100 01000100
        38000700 34000100 0b000100 6d697272 65640000 24000280 20000200 00000000 00000000 04000000
                 00000000 00000000 01000000 04000000
        24000500 01000100 00000000 00000000 00000000 00000000 00000000 00000000 00000000";

    #[test]
    fn redirect_filter_golden_bytes() {
        let mut want = header(0, 0xffff_0000, 66304);
        want.extend_from_slice(&hex(REDIRECT_U32));
        let msg = redirect_filter_message(3, 4);
        assert_eq!(emit(&msg), want);
        let parsed = TcMessage::parse(&want[..]).unwrap();
        assert_eq!(emit(&parsed), want);
    }

    #[test]
    fn psched() {
        // Every kernel since 2.6.31: 1000 ns per tick over 64, 1 MHz clock resolution.
        assert_eq!(parse_psched("000003e8 00000040 000f4240 3b9aca00\n"), Some(15.625));
        assert_eq!(parse_psched("00000001 00000001 3b9aca00 00000064"), Some(1000.0));
        assert_eq!(parse_psched("000003e8 00000000 000f4240 3b9aca00"), None);
        assert_eq!(parse_psched("garbage"), None);
        assert!(psched_tick_in_usec() > 0.0);
    }
}

/// Real-kernel tests, each on its own thread inside a fresh network namespace.
#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;
    use crate::netlink::in_new_netns;
    use crate::netns::Netns;

    #[test]
    fn tbf_ingress_redirect_and_ifb() {
        in_new_netns(|| {
            let nl = Netlink::open().unwrap();
            let here = Netns::current().unwrap();
            nl.create_veth("tcv0", "tcv1", &here, Some(1400), None, None).unwrap();
            let v = nl.link("tcv0").unwrap();
            nl.set_up(&v).unwrap();

            let tbf = Tbf { rate: 125_000, buffer: 1_280_000, limit: 13_365 };
            nl.add_tbf(&v, &tbf).unwrap();
            let e = nl.add_tbf(&v, &tbf).unwrap_err();
            assert!(e.is_exists() && e.to_string().contains("\"tcv0\""), "{e}");
            let qs = nl.qdiscs(&v).unwrap();
            let root = qs.iter().find(|q| q.is_root()).unwrap();
            assert_eq!((root.kind.as_str(), root.handle, root.tbf), ("tbf", TBF_HANDLE, Some(tbf)));

            nl.create_ifb("bwptest0", 1400, 0, Some("cni-bandwidth:net:cid:eth0")).unwrap();
            assert!(nl.create_ifb("bwptest0", 1400, 0, None).unwrap_err().is_exists());
            let ifb = nl.link("bwptest0").unwrap();
            assert_eq!((ifb.mtu, ifb.up), (1400, true));
            let ifbs = nl.ifb_links().unwrap();
            assert_eq!(
                ifbs,
                vec![IfbLink {
                    index: ifb.index,
                    name: "bwptest0".into(),
                    alias: Some("cni-bandwidth:net:cid:eth0".into())
                }]
            );

            nl.add_ingress_qdisc(&v).unwrap();
            assert_eq!(nl.ingress_redirects(&v).unwrap(), vec![]);
            nl.add_redirect_filter(&v, &ifb).unwrap();
            let want = Redirect { priority: 1, protocol: ETH_P_ALL, target: ifb.index, egress: true };
            assert_eq!(nl.ingress_redirects(&v).unwrap(), vec![want]);
            let big = Tbf { rate: 5_000_000_000, buffer: 15_624, limit: 130_000_000 };
            nl.add_tbf(&ifb, &big).unwrap();
            let qs = nl.qdiscs(&ifb).unwrap();
            assert_eq!(qs.iter().find(|q| q.is_root()).and_then(|q| q.tbf), Some(big));
            let qs = nl.qdiscs(&v).unwrap();
            assert!(qs.iter().any(|q| q.kind == "ingress" && q.handle == INGRESS_HANDLE), "{qs:?}");

            nl.del_qdisc(&v, TcHandle::INGRESS).unwrap();
            nl.del_qdisc(&v, TcHandle::ROOT).unwrap();
            assert!(nl.qdiscs(&v).unwrap().iter().all(|q| q.kind != "tbf" && q.kind != "ingress"));
            let e = nl.del_qdisc(&v, TcHandle::INGRESS).unwrap_err();
            assert!(e.to_string().contains("\"tcv0\""), "{e}");
            // Without an ingress qdisc the filter has nowhere to go.
            assert!(nl.add_redirect_filter(&v, &ifb).is_err());
        });
    }
}
