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

/// How long a round trip may take: the server retries its bind for up to `bind`
/// (a fresh IPv6 address may still be tentative) and waits `serve` for the probe; the client
/// sends up to `tries` probes, waiting `reply` for the answer to each.
#[derive(Clone, Copy)]
pub struct Patience {
    pub bind: Duration,
    pub serve: Duration,
    pub tries: u32,
    pub reply: Duration,
}

/// A UDP round trip from the namespace `from` to `to_ip` served in the namespace `to`.
pub fn reach(from: &str, to: &str, to_ip: IpAddr) -> bool {
    let patience = Patience {
        bind: Duration::from_secs(4),
        serve: Duration::from_secs(8),
        tries: 12,
        reply: Duration::from_millis(500),
    };
    reach_with(from, to, to_ip, &patience)
}

/// `reach` with the given patience.
pub fn reach_with(from: &str, to: &str, to_ip: IpAddr, patience: &Patience) -> bool {
    let Patience { bind, serve, tries, reply } = *patience;
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_ns(to.to_string(), move || {
        let start = Instant::now();
        let sock = loop {
            match UdpSocket::bind((to_ip, 0)) {
                Ok(s) => break s,
                Err(_) if start.elapsed() < bind => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("bind {to_ip}: {e}"),
            }
        };
        tx.send(sock.local_addr().expect("addr").port()).expect("send port");
        sock.set_read_timeout(Some(serve)).expect("timeout");
        let mut buf = [0u8; 64];
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], peer);
        }
    });
    let port = rx.recv().expect("server port");
    let client = in_ns(from.to_string(), move || {
        let any: IpAddr = if to_ip.is_ipv4() { "0.0.0.0".parse().unwrap() } else { "::".parse().unwrap() };
        let sock = UdpSocket::bind((any, 0)).expect("bind client");
        sock.set_read_timeout(Some(reply)).expect("timeout");
        let mut buf = [0u8; 64];
        for _ in 0..tries {
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
