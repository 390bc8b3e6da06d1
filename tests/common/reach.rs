//! Reachability between namespaces with a UDP round trip (no ping needed).
#![allow(dead_code)]

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Run `f` on a thread inside the namespace at `path`.
pub fn in_ns<T: Send + 'static>(path: String, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// A UDP round trip from the namespace `from` to `to_ip` served in the namespace `to`.
pub fn reach(from: &str, to: &str, to_ip: IpAddr) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_ns(to.to_string(), move || {
        // A fresh IPv6 address may still be tentative: retry the bind for a while.
        let start = Instant::now();
        let sock = loop {
            match UdpSocket::bind((to_ip, 0)) {
                Ok(s) => break s,
                Err(_) if start.elapsed() < Duration::from_secs(4) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("bind {to_ip}: {e}"),
            }
        };
        tx.send(sock.local_addr().expect("addr").port()).expect("send port");
        sock.set_read_timeout(Some(Duration::from_secs(8))).expect("timeout");
        let mut buf = [0u8; 64];
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], peer);
        }
    });
    let port = rx.recv().expect("server port");
    let client = in_ns(from.to_string(), move || {
        let any: IpAddr = if to_ip.is_ipv4() { "0.0.0.0".parse().unwrap() } else { "::".parse().unwrap() };
        let sock = UdpSocket::bind((any, 0)).expect("bind client");
        sock.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let mut buf = [0u8; 64];
        for _ in 0..12 {
            let _ = sock.send_to(b"ping", (to_ip, port));
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return &buf[..n] == b"ping";
            }
        }
        false
    });
    let ok = client.join().unwrap_or(false);
    let _ = server.join();
    ok
}
