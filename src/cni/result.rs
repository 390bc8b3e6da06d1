//! One canonical result model (the 1.x shape), read from and written to every spec version.

use super::error::CniError;
use super::version::{Family, SpecVersion};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, deserialize_with = "crate::cni::config::null_default", skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, deserialize_with = "crate::cni::config::null_default", skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default", skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, deserialize_with = "crate::cni::config::null_default", skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Interface {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    pub mac: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    pub mtu: u32,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    pub sandbox: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default", rename = "socketPath")]
    pub socket_path: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default", rename = "pciID")]
    pub pci_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpConfig {
    #[serde(default)]
    pub interface: Option<usize>,
    pub address: IpNet,
    #[serde(default, deserialize_with = "ip_or_empty")]
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    pub fn is_v4(&self) -> bool {
        self.address.addr().is_ipv4()
    }
}

/// An optional address, where `""` is none, as Go reads a `net.IP` (`"gw": ""` in a route).
fn ip_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if !s.is_empty() => {
            s.parse().map(Some).map_err(|e| serde::de::Error::custom(format_args!("{e}: {s:?}")))
        }
        _ => Ok(None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "ip_or_empty")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "is_zero", rename = "advmss")]
    pub adv_mss: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route { dst, gw, mtu: 0, adv_mss: 0, priority: 0, table: None, scope: None }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// The canonical result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

const NO_IP: &str = "cannot convert: no valid IP addresses";

// ---- wire layouts -------------------------------------------------------------------------

// 1.x: the reference goes through a map, so keys are alphabetical at every level.
#[derive(Serialize)]
struct WireV1<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsV1<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<IfaceV1<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpV1<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteAlpha<'a>>,
}

#[derive(Serialize)]
struct DnsV1<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    nameservers: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    options: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    search: &'a [String],
}

#[derive(Serialize)]
struct IfaceV1<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    mac: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    mtu: u32,
    name: &'a str,
    #[serde(rename = "pciID", skip_serializing_if = "str::is_empty")]
    pci_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    sandbox: &'a str,
    #[serde(rename = "socketPath", skip_serializing_if = "str::is_empty")]
    socket_path: &'a str,
}

#[derive(Serialize)]
struct IpV1<'a> {
    address: &'a IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: &'a Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize)]
struct RouteAlpha<'a> {
    #[serde(rename = "advmss", skip_serializing_if = "is_zero")]
    adv_mss: u32,
    dst: &'a IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: &'a Option<IpAddr>,
    #[serde(skip_serializing_if = "is_zero")]
    mtu: u32,
    #[serde(skip_serializing_if = "is_zero")]
    priority: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
}

// 0.3.x / 0.4.0: Go struct order.
#[derive(Serialize)]
struct WireV04<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<IfaceV04<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpV04<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: &'a Vec<Route>,
    dns: &'a Dns,
}

#[derive(Serialize)]
struct IfaceV04<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mac: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    sandbox: &'a str,
}

#[derive(Serialize)]
struct IpV04<'a> {
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: &'a IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: &'a Option<IpAddr>,
}

// 0.1.0 / 0.2.0.
#[derive(Serialize, Deserialize, Default)]
struct WireV02 {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    ip4: Option<Ip02>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    ip6: Option<Ip02>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct Ip02 {
    ip: IpNet,
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "ip_or_empty")]
    gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    routes: Vec<Route02>,
}

#[derive(Serialize, Deserialize)]
struct Route02 {
    dst: IpNet,
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "ip_or_empty")]
    gw: Option<IpAddr>,
}

#[derive(Deserialize, Default)]
struct WireIn {
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    interfaces: Vec<Interface>,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    ips: Vec<IpConfig>,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    routes: Vec<Route>,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    dns: Dns,
}

impl CniResult {
    /// Write the result in the layout of `version` (the config's).
    pub fn to_json(&self, version: SpecVersion) -> Result<String, CniError> {
        let v = version.as_str();
        Ok(match version.family() {
            Family::V1 => crate::cni::json::to_string_pretty(&WireV1 {
                cni_version: v,
                dns: (!self.dns.is_empty()).then_some(DnsV1 {
                    domain: &self.dns.domain,
                    nameservers: &self.dns.nameservers,
                    options: &self.dns.options,
                    search: &self.dns.search,
                }),
                interfaces: self
                    .interfaces
                    .iter()
                    .map(|i| IfaceV1 {
                        mac: &i.mac,
                        mtu: i.mtu,
                        name: &i.name,
                        pci_id: &i.pci_id,
                        sandbox: &i.sandbox,
                        socket_path: &i.socket_path,
                    })
                    .collect(),
                ips: self
                    .ips
                    .iter()
                    .map(|ip| IpV1 { address: &ip.address, gateway: &ip.gateway, interface: ip.interface })
                    .collect(),
                routes: self
                    .routes
                    .iter()
                    .map(|r| RouteAlpha {
                        adv_mss: r.adv_mss,
                        dst: &r.dst,
                        gw: &r.gw,
                        mtu: r.mtu,
                        priority: r.priority,
                        scope: r.scope,
                        table: r.table,
                    })
                    .collect(),
            }),
            Family::V04 => crate::cni::json::to_string_pretty(&WireV04 {
                cni_version: v,
                interfaces: self
                    .interfaces
                    .iter()
                    .map(|i| IfaceV04 { name: &i.name, mac: &i.mac, sandbox: &i.sandbox })
                    .collect(),
                ips: self
                    .ips
                    .iter()
                    .map(|ip| IpV04 {
                        version: if ip.is_v4() { "4" } else { "6" },
                        interface: ip.interface,
                        address: &ip.address,
                        gateway: &ip.gateway,
                    })
                    .collect(),
                routes: &self.routes,
                dns: &self.dns,
            }),
            Family::V02 => crate::cni::json::to_string_pretty(&self.to_v02(v)?),
        })
    }

    fn to_v02(&self, version: &str) -> Result<WireV02, CniError> {
        let pick = |v4: bool| {
            self.ips.iter().find(|ip| ip.is_v4() == v4).map(|ip| Ip02 {
                ip: ip.address,
                gateway: ip.gateway,
                routes: self
                    .routes
                    .iter()
                    .filter(|r| r.dst.addr().is_ipv4() == v4)
                    .map(|r| Route02 { dst: r.dst, gw: r.gw })
                    .collect(),
            })
        };
        let out =
            WireV02 { cni_version: version.to_string(), ip4: pick(true), ip6: pick(false), dns: self.dns.clone() };
        if out.ip4.is_none() && out.ip6.is_none() {
            return Err(CniError::internal(NO_IP));
        }
        Ok(out)
    }

    /// Parse a result written at `version` (prevResult is read at the config's version;
    /// a delegated plugin's reply at its own).
    pub fn from_value(value: &Value, version: SpecVersion) -> Result<CniResult, CniError> {
        let bad =
            |e: serde_json::Error| CniError::decoding(format!("failed to parse result at version {version}: {e}"));
        match version.family() {
            Family::V02 => {
                let w: WireV02 = crate::cni::json::from_value(value.clone()).map_err(bad)?;
                let mut r = CniResult { dns: w.dns, ..Default::default() };
                for ip in [w.ip4, w.ip6].into_iter().flatten() {
                    r.ips.push(IpConfig { interface: None, address: ip.ip, gateway: ip.gateway });
                    r.routes.extend(ip.routes.into_iter().map(|rt| Route::new(rt.dst, rt.gw)));
                }
                Ok(r)
            }
            Family::V04 | Family::V1 => {
                let w: WireIn = crate::cni::json::from_value(value.clone()).map_err(bad)?;
                Ok(CniResult { interfaces: w.interfaces, ips: w.ips, routes: w.routes, dns: w.dns })
            }
        }
    }

    /// Parse a plugin's reply by its own `cniVersion` (missing or empty means the caller's
    /// version, as libcni fixes an empty one up to the configuration's).
    pub fn from_reply(bytes: &[u8], fallback: SpecVersion) -> Result<CniResult, CniError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decoding(format!("failed to parse plugin result: {e}")))?;
        CniResult::from_own_version(&value, fallback, "plugin result")
    }

    /// A chained plugin's `prevResult`, read by its own `cniVersion` as a reply is (a
    /// 0.2.0-shaped one converts; an unknown version is an error).
    pub fn from_prev(value: &Value, conf_version: SpecVersion) -> Result<CniResult, CniError> {
        CniResult::from_own_version(value, conf_version, "prevResult")
    }

    fn from_own_version(value: &Value, fallback: SpecVersion, what: &str) -> Result<CniResult, CniError> {
        let version = match value.get("cniVersion").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(s) => SpecVersion::parse(s)
                .ok_or_else(|| CniError::decoding(format!("{what} has unknown cniVersion \"{s}\"")))?,
            None => fallback,
        };
        CniResult::from_value(value, version)
    }

    /// The round trip a result makes through an exec'd plugin at `version`. The 1.x wire form
    /// carries every field of a result, so there it is the result itself (a test holds the
    /// two equal); older versions drop what they cannot say.
    pub fn through_version(&self, version: SpecVersion) -> Result<CniResult, CniError> {
        if version.family() == Family::V1 {
            return Ok(self.clone());
        }
        let text = self.to_json(version)?;
        CniResult::from_reply(text.as_bytes(), version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::version::ALL;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface { name: "cni0".into(), mac: "aa:bb:cc:dd:ee:ff".into(), ..Default::default() },
                Interface {
                    name: "eth0".into(),
                    mac: "aa:bb:cc:dd:ee:01".into(),
                    sandbox: "/run/netns/x".into(),
                    mtu: 1500,
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.2/24".parse().unwrap(),
                    gateway: "10.1.0.1".parse().ok(),
                },
                IpConfig { interface: Some(1), address: "fd00::2/64".parse().unwrap(), gateway: None },
            ],
            routes: vec![Route::new("0.0.0.0/0".parse().unwrap(), "10.1.0.1".parse().ok()), {
                let mut r = Route::new("fd01::/64".parse().unwrap(), None);
                r.priority = 5;
                r
            }],
            dns: Dns { nameservers: vec!["10.1.0.1".into()], ..Default::default() },
        }
    }

    #[test]
    fn v1_is_alphabetical() {
        let s = sample().to_json(SpecVersion::V1_0_0).unwrap();
        let keys: Vec<usize> = ["\"cniVersion\"", "\"dns\"", "\"interfaces\"", "\"ips\"", "\"routes\""]
            .iter()
            .map(|k| s.find(k).unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{s}");
        assert!(s.contains("\"mtu\": 1500"));
        assert!(!s.contains("\"version\""));
        let mut r = sample();
        r.dns = Dns {
            nameservers: vec!["1.1.1.1".into()],
            domain: "d".into(),
            search: vec!["s".into()],
            options: vec!["o".into()],
        };
        let s = r.to_json(SpecVersion::V1_1_0).unwrap();
        let keys: Vec<usize> =
            ["\"domain\"", "\"nameservers\"", "\"options\"", "\"search\""].iter().map(|k| s.find(k).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{s}");
        let mac = s.find("\"mac\": \"aa:bb:cc:dd:ee:01\"").unwrap();
        assert!(mac < s.find("\"name\": \"eth0\"").unwrap());
    }

    #[test]
    fn v04_has_versions_and_struct_order() {
        let s = sample().to_json(SpecVersion::V0_4_0).unwrap();
        assert!(s.contains("\"version\": \"4\""));
        assert!(s.contains("\"version\": \"6\""));
        assert!(!s.contains("\"mtu\""));
        assert!(s.find("\"interfaces\"").unwrap() < s.find("\"dns\"").unwrap());
        assert!(s.find("\"version\"").unwrap() < s.find("\"address\"").unwrap());
        // route extras survive at 0.4
        assert!(s.contains("\"priority\": 5"));
        let empty = CniResult::default().to_json(SpecVersion::V0_3_1).unwrap();
        assert_eq!(empty, "{\n    \"cniVersion\": \"0.3.1\",\n    \"dns\": {}\n}");
    }

    #[test]
    fn v02_splits_families() {
        let s = sample().to_json(SpecVersion::V0_2_0).unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["ip4"]["ip"], "10.1.0.2/24");
        assert_eq!(v["ip4"]["gateway"], "10.1.0.1");
        assert_eq!(v["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["ip6"]["ip"], "fd00::2/64");
        assert_eq!(v["ip6"]["routes"][0]["dst"], "fd01::/64");
        assert!(v.get("interfaces").is_none());
        assert_eq!(v["dns"]["nameservers"][0], "10.1.0.1");
    }

    #[test]
    fn v02_without_ip_fails() {
        let r = CniResult { interfaces: sample().interfaces, ..Default::default() };
        let e = r.to_json(SpecVersion::V0_2_0).unwrap_err();
        assert_eq!(e.msg, "cannot convert: no valid IP addresses");
        assert!(r.to_json(SpecVersion::V0_4_0).is_ok());
    }

    #[test]
    fn round_trip_every_version() {
        for &v in ALL {
            let r = sample().through_version(v).unwrap();
            assert_eq!(r.ips.len(), 2, "{v}");
            assert_eq!(r.ips[0].address, sample().ips[0].address);
            assert_eq!(r.dns, sample().dns);
            match v.family() {
                Family::V02 => {
                    assert!(r.interfaces.is_empty());
                    assert_eq!(r.routes.len(), 2);
                }
                Family::V04 => assert_eq!(r.interfaces[1].mtu, 0),
                Family::V1 => assert_eq!(r, sample()),
            }
        }
    }

    #[test]
    fn the_1x_wire_form_carries_every_field() {
        let mut r = sample();
        r.interfaces[0].pci_id = "0000:00:1f.0".into();
        r.interfaces[0].socket_path = "/run/vhost.sock".into();
        r.ips[1].gateway = "fd00::1".parse().ok();
        r.routes[0] =
            Route { mtu: 1400, adv_mss: 1360, priority: 7, table: Some(0), scope: Some(253), ..r.routes[0].clone() };
        r.dns = Dns {
            nameservers: vec!["10.1.0.1".into(), "fd00::1".into()],
            domain: "cluster.local".into(),
            search: vec!["svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        for &v in ALL.iter().filter(|v| v.family() == Family::V1) {
            for result in [sample(), r.clone(), CniResult::default()] {
                let wire = result.to_json(v).unwrap();
                assert_eq!(CniResult::from_reply(wire.as_bytes(), v).unwrap(), result, "{v}: {wire}");
            }
        }
    }

    #[test]
    fn read_as_go_reads_them() {
        // An empty gateway is none (Go's net.IP), an interface may come without a name.
        let r = CniResult::from_reply(
            br#"{"cniVersion":"1.0.0","interfaces":[{"mac":"aa:bb:cc:dd:ee:01"}],
                "ips":[{"address":"10.0.0.5/24","gateway":""}],"routes":[{"dst":"0.0.0.0/0","gw":""}]}"#,
            SpecVersion::V1_0_0,
        )
        .unwrap();
        assert_eq!((r.ips[0].gateway, r.routes[0].gw, r.interfaces[0].name.as_str()), (None, None, ""));
        let e = crate::cni::json::from_slice::<Route>(br#"{"dst":"0.0.0.0/0","gw":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"gw: invalid IP address syntax: "x""#);
    }

    #[test]
    fn reply_uses_its_own_version() {
        let r = CniResult::from_reply(br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.5/24"}}"#, SpecVersion::V1_0_0)
            .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.5/24");
        // An empty cniVersion is the caller's, as libcni fixes it up.
        let r = CniResult::from_reply(br#"{"cniVersion":"","ips":[{"address":"10.0.0.6/24"}]}"#, SpecVersion::V1_0_0);
        assert_eq!(r.unwrap().ips[0].address.to_string(), "10.0.0.6/24");
        let e = CniResult::from_reply(b"{not json", SpecVersion::V1_0_0).unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn prev_result_uses_its_own_version() {
        let prev = serde_json::json!({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.5/24","gateway":"10.0.0.1"}});
        let r = CniResult::from_prev(&prev, SpecVersion::V1_0_0).unwrap();
        assert_eq!(
            (r.ips[0].address.to_string(), r.ips[0].gateway.map(|g| g.to_string())),
            ("10.0.0.5/24".into(), Some("10.0.0.1".into()))
        );
        let prev = serde_json::json!({"ips":[{"address":"10.0.0.6/24"}]});
        assert_eq!(CniResult::from_prev(&prev, SpecVersion::V1_0_0).unwrap().ips.len(), 1);
        let prev = serde_json::json!({"cniVersion":"9.9.9","ips":[]});
        let e = CniResult::from_prev(&prev, SpecVersion::V1_0_0).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (6, r#"prevResult has unknown cniVersion "9.9.9""#));
    }
}
