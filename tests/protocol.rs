//! The protocol as runtimes see it: the binary exec'd under applet names with real env and stdin.

mod common;
use common::*;

/// (what, env, stdin, code, message prefix)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u64, &'a str);

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"proto","type":"loopback"}"#;

#[test]
fn front_end_lists_and_runs_applets() {
    let out = std::process::Command::new(bin()).arg("--list").output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.lines().any(|l| l == "cnitool"), "{list}");
    assert!(list.lines().any(|l| l == "loopback"), "{list}");
    let out = std::process::Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cnibox "));
    // `cnibox <applet>` runs the applet
    let out = std::process::Command::new(bin()).arg("loopback").env("CNI_COMMAND", "VERSION").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("supportedVersions"));
    let out = std::process::Command::new(bin()).arg("no-such-applet").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_link_under_a_name_that_is_no_applet_fails_the_call() {
    // A runtime exec'ing `dhcp` linked here by mistake must see an error, not an empty success.
    let dir = std::env::temp_dir().join(unique("cnibox-noapplet"));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("dhcp");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let r = run_plugin(std::process::Command::new(&link), &cni_env("ADD", "c1", "/x", "eth0"), CONF);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.code(), 7, "{r:?}");
    assert!(r.json()["msg"].as_str().unwrap().starts_with("cnibox has no plugin \"dhcp\""), "{r:?}");
}

#[test]
fn binary_is_static() {
    if std::env::var_os("CNIBOX_BIN").is_none() {
        eprintln!("skipping: only the release build (CNIBOX_BIN) is static");
        return;
    }
    let out = std::process::Command::new("file").arg("-L").arg(bin()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("static"), "{text}");
}

#[test]
fn every_plugin_prints_about_without_command() {
    for name in std::fs::read_dir(plugin_dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()) {
        if name == "cnitool" {
            continue;
        }
        let r = plugin(&name, None, &[], "");
        assert_eq!(r.status, 0, "{name}: {r:?}");
        assert!(r.stdout.is_empty());
        assert!(r.stderr.starts_with(&format!("CNI {name} plugin")), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("CNI protocol versions supported: "), "{name}");
    }
}

#[test]
fn version_reply() {
    let r = plugin("loopback", None, &[("CNI_COMMAND", "VERSION")], "");
    r.ok();
    assert_eq!(
        r.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
}

#[test]
fn bad_input_gets_the_reference_codes() {
    let ns = "/nonexistent/netns";
    let env = cni_env("ADD", "c1", ns, "eth0");
    let cases: &[Case] = &[
        ("malformed json", env.clone(), "{nope", 6, "error unmarshall network config"),
        ("missing name", env.clone(), r#"{"cniVersion":"1.0.0","type":"loopback"}"#, 7, "missing network name"),
        (
            "bad name",
            env.clone(),
            r#"{"cniVersion":"1.0.0","name":"a b"}"#,
            7,
            "invalid characters found in network name",
        ),
        ("unsupported version", env.clone(), r#"{"cniVersion":"0.9.0","name":"n"}"#, 1, "incompatible CNI versions"),
        ("bad container id", cni_env("ADD", "bad/id", ns, "eth0"), CONF, 4, "invalid characters in containerID"),
        ("bad ifname", cni_env("ADD", "c1", ns, "eth0:1"), CONF, 4, "interface name contains / or : or whitespace"),
        ("long ifname", cni_env("ADD", "c1", ns, "abcdefghijklmnop"), CONF, 4, "interface name is too long"),
        ("unknown command", cni_env("FROB", "c1", ns, "eth0"), CONF, 4, "unknown CNI_COMMAND: FROB"),
        (
            "missing env",
            vec![("CNI_COMMAND", "ADD")],
            CONF,
            4,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing",
        ),
        (
            "check below 0.4.0",
            cni_env("CHECK", "c1", ns, "eth0"),
            r#"{"cniVersion":"0.3.1","name":"n"}"#,
            1,
            "config version does not allow CHECK",
        ),
    ];
    for (what, env, stdin, code, msg) in cases {
        let r = plugin("loopback", None, env, stdin);
        assert_eq!(r.code(), *code, "{what}: {r:?}");
        let j = r.json();
        assert!(j["msg"].as_str().unwrap().starts_with(msg), "{what}: {j}");
        assert!(j.get("cniVersion").is_none());
    }
    // bad container IDs and names are named in details
    let r = plugin("loopback", None, &cni_env("ADD", "bad/id", ns, "eth0"), CONF);
    assert_eq!(r.json()["details"], "bad/id");
}

#[test]
fn gc_and_status_need_1_1_0() {
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")];
    let r = plugin("loopback", None, &env, CONF);
    assert_eq!(r.code(), 1);
    let r = plugin("loopback", None, &env, r#"{"cniVersion":"1.1.0","name":"n","type":"loopback"}"#);
    r.ok();
    let env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/opt/cni/bin")];
    plugin("loopback", None, &env, r#"{"cniVersion":"1.1.0","name":"n","type":"loopback"}"#).ok();
}

#[test]
fn cni_args_only_matter_to_plugins_that_read_them() {
    if !root() {
        return;
    }
    let ns = Netns::bare("args");
    let path = ns.path();
    let mut env = cni_env("ADD", "c1", &path, "eth0");
    env.push(("CNI_ARGS", "K8S_POD_NAME=a=b;whatever"));
    plugin("loopback", None, &env, CONF).ok();
}

#[test]
fn del_of_a_config_add_refused_succeeds() {
    // The runtime DELs after a failed ADD; a config ADD refused (a value out of range, a field of
    // the wrong type) must not make that cleanup fail forever.
    if !root() {
        return;
    }
    let host = Netns::new("delref");
    let pod = Netns::bare("delrefpod");
    let data = TempDir::new("delref");
    let ipam =
        serde_json::json!({"type": "host-local", "dataDir": data.path(), "ranges": [[{"subnet": "10.251.0.0/24"}]]});
    let prev = serde_json::json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod.path()}],
        "ips": [{"address": "10.251.0.2/24", "interface": 0}]});
    let cases = [
        ("bridge", serde_json::json!({"vlan": 5000, "ipam": ipam})),
        ("bridge", serde_json::json!({"hairpinMode": "yes", "mtu": "abc", "ipMasq": true, "ipam": ipam})),
        (
            "bridge",
            serde_json::json!({"ipam": {"type": "host-local", "dataDir": data.path(), "ranges": [[{"subnet": "10.1.0.0/33"}]]}}),
        ),
        ("ptp", serde_json::json!({"mtu": -1, "ipMasq": true, "ipam": ipam})),
        ("host-local", serde_json::json!({"ipam": {"type": "host-local", "dataDir": data.path(), "ranges": []}})),
        ("firewall", serde_json::json!({"ingressPolicy": "weird", "backend": "nftables", "prevResult": prev})),
        ("bandwidth", serde_json::json!({"ingressRate": "x", "ingressBurst": -1, "prevResult": prev})),
        (
            "portmap",
            serde_json::json!({"backend": "nftables", "prevResult": prev,
            "runtimeConfig": {"portMappings": [{"hostPort": "x", "containerPort": 80, "protocol": "tcp"}]}}),
        ),
    ];
    let path = pod.path();
    for (plugin_name, extra) in cases {
        let mut conf = serde_json::json!({"cniVersion": "1.0.0", "name": "delref", "type": plugin_name});
        merge(&mut conf, extra);
        let conf = conf.to_string();
        let add = plugin(plugin_name, Some(&host), &cni_env("ADD", "d1", &path, "eth0"), &conf);
        assert_ne!(add.status, 0, "{plugin_name} ADD should refuse {conf}: {add:?}");
        let del = plugin(plugin_name, Some(&host), &cni_env("DEL", "d1", &path, "eth0"), &conf);
        assert_eq!(del.status, 0, "{plugin_name} DEL of {conf}: {del:?}");
    }
}
