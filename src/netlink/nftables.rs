//! nf_tables over netlink: the tables of the namespace, a table's chains and rules (handle,
//! comment and expressions, see nftexpr.rs), and one atomic batch of commands that adds or
//! deletes tables, chains and rules.
//!
//! This spares the firewall core `nft`'s start-up (a few milliseconds a run, two runs a
//! plugin) and, for deletions, the wait at the end of every nf_tables transaction that
//! deletes something: the kernel frees deleted objects after an RCU grace period, and the
//! process whose netfilter socket closes next waits for that (see detach.rs). The session's
//! socket is closed by a child.

use super::Error;
use super::detach::close_in_child;
use super::nftexpr::{self, Expr};
use super::nlmsg::{Msg, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR};
use super::nlmsg::{attr, attr_str, attrs, error_code, message, messages, nfgenmsg, str_attr};
use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE};
use rtnetlink::sys::{Socket, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
// enum nf_tables_msg_types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
// enum nft_table_attributes, nft_chain_attributes, nft_rule_attributes
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
/// libnftnl's NFTNL_UDATA_RULE_COMMENT (and _TABLE_COMMENT): the type of the comment in a
/// rule's (a table's) user data.
const UDATA_RULE_COMMENT: u8 = 0;
/// NF_INET_* hook numbers, shared by the ip, ip6, inet and bridge families.
const HOOKS: [&str; 5] = ["prerouting", "input", "forward", "output", "postrouting"];

/// The NFPROTO_* number of an nft family name.
fn family_number(name: &str) -> Option<u8> {
    Some(match name {
        "inet" => 1,
        "ip" => 2,
        "arp" => 3,
        "netdev" => 5,
        "bridge" => 7,
        "ip6" => 10,
        _ => return None,
    })
}

fn family_name(n: u8) -> Option<&'static str> {
    ["inet", "ip", "arp", "netdev", "bridge", "ip6"].into_iter().find(|f| family_number(f) == Some(n))
}

/// A rule as the teardown paths see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    pub exprs: Vec<Expr>,
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// `filter`, `nat`, `route`.
    pub kind: String,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
    pub hook: String,
    pub prio: i64,
    /// `accept` or `drop`.
    pub policy: String,
}

/// What a table holds.
#[derive(Debug, Default, PartialEq)]
pub struct Contents {
    pub chains: Vec<String>,
    /// The base chains among `chains`, by name.
    pub base: Vec<(String, BaseChain)>,
    pub rules: Vec<Rule>,
}

/// One deletion in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Delete {
    Rule {
        chain: String,
        handle: u64,
    },
    /// Every rule of the chain.
    Flush {
        chain: String,
    },
    Chain {
        chain: String,
    },
}

/// One command of a batch, in the table the batch is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Create the table if it is missing, with a comment.
    AddTable { comment: Option<String> },
    /// Create the chain if it is missing (a base chain with `base`); an existing one is updated.
    AddChain { chain: String, base: Option<BaseChain> },
    /// Append a rule.
    AddRule { chain: String, exprs: Vec<Expr>, comment: Option<String> },
    /// Delete rules or a chain.
    Delete(Delete),
}

/// The (type, payload) of each message a dump answered with.
type Answers = Vec<(u16, Vec<u8>)>;

/// A netfilter socket in the calling thread's namespace.
pub struct Session {
    socket: Option<Socket>,
    seq: u32,
    buf: Vec<u8>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(s) = self.socket.take() {
            close_in_child(s);
        }
    }
}

impl Session {
    pub fn open() -> Result<Session, Error> {
        let socket = Socket::new(NETLINK_NETFILTER).map_err(|e| Error::io("failed to open a netfilter socket", &e))?;
        // Errors come with the kernel's own words and without an echo of the whole command
        // (a large batch that fails everywhere would otherwise overflow the receive buffer).
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Session { socket: Some(socket), seq: 0, buf: vec![0; 64 * 1024] })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn send(&self, msg: &[u8], context: &dyn Fn() -> String) -> Result<(), Error> {
        let Some(s) = self.socket.as_ref() else { return Err(Error::new(context(), "socket closed")) };
        s.send(msg, 0).map(drop).map_err(|e| Error::io(context(), &e))
    }

    /// Send the dump request `request(seq)` and hand each answer's type and payload to `each`,
    /// until the end. A dump that changes in the objects it lists interrupted (the kernel
    /// resumes by position, so it may have skipped some) is asked for again, from scratch.
    fn dump(
        &mut self,
        request: impl Fn(u32) -> Vec<u8>,
        context: &dyn Fn() -> String,
        mut each: impl FnMut(u16, &[u8]),
    ) -> Result<(), Error> {
        for _ in 0..4 {
            let seq = self.next_seq();
            if let Some(answers) = self.dump_once(&request(seq), context)? {
                for (kind, payload) in &answers {
                    each(*kind, payload);
                }
                return Ok(());
            }
        }
        Err(Error::new(context(), "the ruleset kept changing while it was read"))
    }

    /// One dump: its answers, or None when it was interrupted.
    fn dump_once(&mut self, request: &[u8], context: &dyn Fn() -> String) -> Result<Option<Answers>, Error> {
        self.send(request, context)?;
        let Some(s) = self.socket.as_ref() else { return Err(Error::new(context(), "socket closed")) };
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let n = s.recv(&mut &mut self.buf[..], 0).map_err(|e| Error::io(context(), &e))?;
            if n == 0 {
                return Err(Error::new(context(), "the kernel closed the dump"));
            }
            for Msg { kind, flags, payload, .. } in messages(&self.buf[..n]) {
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match (kind, error_code(payload)) {
                    (NLMSG_DONE | NLMSG_ERROR, Some(errno)) if errno != 0 => {
                        return Err(Error::kernel(context(), errno, None));
                    }
                    (NLMSG_DONE, _) => return Ok((!interrupted).then_some(out)),
                    (NLMSG_ERROR, _) => {}
                    (k, _) => out.push((k, payload.to_vec())),
                }
            }
        }
    }

    /// Every (family, table) of the namespace.
    pub fn tables(&mut self) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        self.dump(
            |seq| message(nft_type(NFT_MSG_GETTABLE), NLM_F_REQUEST | NLM_F_DUMP, seq, &nfgenmsg(0, 0)),
            &|| "failed to list nftables tables".to_string(),
            |kind, payload| {
                if kind == nft_type(NFT_MSG_NEWTABLE)
                    && let Some(family) = payload.first().copied().and_then(family_name)
                    && let Some(name) = string_attr(payload, NFTA_TABLE_NAME)
                {
                    out.push((family.to_string(), name));
                }
            },
        )?;
        Ok(out)
    }

    /// The names of the chains of `family table` (none when there is no such table).
    pub fn chains(&mut self, family: &str, table: &str) -> Result<Vec<String>, Error> {
        let fam = family_number(family).ok_or_else(|| Error::new("nftables", format!("unknown family {family}")))?;
        let mut out = Vec::new();
        self.dump(
            |seq| message(nft_type(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_DUMP, seq, &nfgenmsg(fam, 0)),
            &|| format!("failed to list the chains of table {family} {table}"),
            |kind, payload| {
                if kind == nft_type(NFT_MSG_NEWCHAIN)
                    && string_attr(payload, NFTA_CHAIN_TABLE).as_deref() == Some(table)
                    && let Some(name) = string_attr(payload, NFTA_CHAIN_NAME)
                {
                    out.push(name);
                }
            },
        )?;
        Ok(out)
    }

    /// The chains and rules of `family table`; None when there is no such table.
    pub fn contents(&mut self, family: &str, table: &str) -> Result<Option<Contents>, Error> {
        let fam = family_number(family).ok_or_else(|| Error::new("nftables", format!("unknown family {family}")))?;
        let context = || format!("failed to list table {family} {table}");
        let mut out = Contents::default();
        self.dump(
            |seq| message(nft_type(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_DUMP, seq, &nfgenmsg(fam, 0)),
            &context,
            |kind, payload| {
                if kind == nft_type(NFT_MSG_NEWCHAIN)
                    && string_attr(payload, NFTA_CHAIN_TABLE).as_deref() == Some(table)
                    && let Some(name) = string_attr(payload, NFTA_CHAIN_NAME)
                {
                    if let Some(b) = parse_base_chain(payload) {
                        out.base.push((name.clone(), b));
                    }
                    out.chains.push(name);
                }
            },
        )?;
        // A table without chains still exists.
        if out.chains.is_empty() && !self.tables()?.iter().any(|(f, t)| f == family && t == table) {
            return Ok(None);
        }
        let mut request = nfgenmsg(fam, 0);
        request.extend(str_attr(NFTA_RULE_TABLE, table));
        self.dump(
            |seq| message(nft_type(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, seq, &request),
            &context,
            |kind, payload| {
                if kind == nft_type(NFT_MSG_NEWRULE)
                    && let Some(r) = parse_rule(payload, table)
                {
                    out.rules.push(r);
                }
            },
        )?;
        Ok(Some(out))
    }

    /// Apply `cmds` to `family table` in one transaction: all of them, or, when one fails,
    /// none (the error names the first that failed).
    pub fn commit(&mut self, family: &str, table: &str, cmds: &[Cmd]) -> Result<(), Error> {
        if cmds.is_empty() {
            return Ok(());
        }
        let fam = family_number(family).ok_or_else(|| Error::new("nftables", format!("unknown family {family}")))?;
        let first = self.seq + 1;
        self.seq += cmds.len() as u32 + 2;
        let last = first + cmds.len() as u32;
        let context = |seq: Option<u32>| {
            let cmd = seq.and_then(|s| s.checked_sub(first + 1)).and_then(|i| cmds.get(i as usize));
            match cmd {
                Some(c) => format!("failed to {} in table {family} {table}", describe(c)),
                None => format!("failed to change nftables table {family} {table}"),
            }
        };
        let batch = batch(fam, table, cmds, first).map_err(|m| Error::new(context(None), m))?;
        // The kernel takes a batch only whole, in one message no larger than the socket's send
        // buffer (about 200 KB by default): a larger one (hundreds of host ports) gets one to
        // match, as nft does.
        if batch.len() > 128 * 1024
            && let Some(sock) = self.socket.as_ref()
        {
            super::detach::set_send_buffer(sock, batch.len() + 64 * 1024);
        }
        self.send(&batch, &|| context(None))?;
        let Some(s) = self.socket.as_ref() else { return Err(Error::new(context(None), "socket closed")) };
        // Only the last command asks for an ACK: the kernel reports every command that fails
        // anyway, and an ACK for each would overflow the socket's buffer on a large batch. The
        // exchange ends with the answer to the last command, or with an error about the batch
        // as a whole (sent with BATCH_BEGIN's number). The first error says why.
        let mut failure: Option<(u32, i32, Option<String>)> = None;
        let mut done = false;
        while !done {
            let n = s.recv(&mut &mut self.buf[..], 0).map_err(|e| Error::io(context(None), &e))?;
            if n == 0 {
                return Err(Error::new(context(None), "no answer to the batch"));
            }
            for m in messages(&self.buf[..n]).filter(|m| m.kind == NLMSG_ERROR) {
                let errno = error_code(m.payload).unwrap_or(0);
                if errno != 0 && failure.is_none() {
                    failure = Some((m.seq, errno, super::error::ext_ack_message(m.payload.get(4..).unwrap_or(&[]))));
                }
                done |= m.seq == last || (m.seq == first && errno != 0);
            }
        }
        // Whatever else the kernel said about this batch is of no use: leave nothing for the
        // next request.
        while s.recv(&mut &mut self.buf[..], nix::libc::MSG_DONTWAIT).is_ok_and(|n| n > 0) {}
        match failure {
            Some((seq, errno, text)) => Err(Error::kernel(context(Some(seq)), errno, text)),
            None => Ok(()),
        }
    }
}

/// What a command does, for errors.
fn describe(c: &Cmd) -> String {
    match c {
        Cmd::AddTable { .. } => "add the table".to_string(),
        Cmd::AddChain { chain, .. } => format!("add chain {chain}"),
        Cmd::AddRule { chain, .. } => format!("add a rule to chain {chain}"),
        Cmd::Delete(Delete::Rule { chain, handle }) => format!("delete rule {handle} of chain {chain}"),
        Cmd::Delete(Delete::Flush { chain }) => format!("flush chain {chain}"),
        Cmd::Delete(Delete::Chain { chain }) => format!("delete chain {chain}"),
    }
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// A comment as user data: one type-length-value entry, the text NUL-terminated.
fn udata_comment_bytes(comment: &str) -> Result<Vec<u8>, String> {
    let len = u8::try_from(comment.len() + 1).map_err(|_| format!("comment too long: {comment}"))?;
    let mut v = vec![UDATA_RULE_COMMENT, len];
    v.extend(comment.as_bytes());
    v.push(0);
    Ok(v)
}

/// BATCH_BEGIN, one message per command (the last asking for an ACK), BATCH_END; sequence
/// numbers from `first`.
fn batch(family: u8, table: &str, cmds: &[Cmd], first: u32) -> Result<Vec<u8>, String> {
    let batch_hdr = nfgenmsg(0, NFNL_SUBSYS_NFTABLES);
    let mut out = message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first, &batch_hdr);
    for (seq, c) in (first + 1..).zip(cmds) {
        let mut body = nfgenmsg(family, 0);
        let (kind, flags) = match c {
            Cmd::AddTable { comment } => {
                body.extend(str_attr(NFTA_TABLE_NAME, table));
                if let Some(c) = comment {
                    body.extend(attr(NFTA_TABLE_USERDATA, &udata_comment_bytes(c)?));
                }
                (NFT_MSG_NEWTABLE, NLM_F_CREATE)
            }
            Cmd::AddChain { chain, base } => {
                body.extend(str_attr(NFTA_CHAIN_TABLE, table));
                body.extend(str_attr(NFTA_CHAIN_NAME, chain));
                if let Some(b) = base {
                    let hook =
                        HOOKS.iter().position(|h| *h == b.hook).ok_or_else(|| format!("unknown hook {}", b.hook))?;
                    let prio = i32::try_from(b.prio).map_err(|_| format!("priority out of range: {}", b.prio))?;
                    let policy: u32 = match b.policy.as_str() {
                        "accept" => 1,
                        "drop" => 0,
                        p => return Err(format!("unknown policy {p}")),
                    };
                    let hook = [
                        attr(NFTA_HOOK_HOOKNUM, &(hook as u32).to_be_bytes()),
                        attr(NFTA_HOOK_PRIORITY, &prio.to_be_bytes()),
                    ];
                    body.extend(attr(NFTA_CHAIN_HOOK, &hook.concat()));
                    body.extend(attr(NFTA_CHAIN_POLICY, &policy.to_be_bytes()));
                    body.extend(str_attr(NFTA_CHAIN_TYPE, &b.kind));
                }
                (NFT_MSG_NEWCHAIN, NLM_F_CREATE)
            }
            Cmd::AddRule { chain, exprs, comment } => {
                body.extend(str_attr(NFTA_RULE_TABLE, table));
                body.extend(str_attr(NFTA_RULE_CHAIN, chain));
                body.extend(attr(NFTA_RULE_EXPRESSIONS, &nftexpr::encode(exprs)));
                if let Some(c) = comment {
                    body.extend(attr(NFTA_RULE_USERDATA, &udata_comment_bytes(c)?));
                }
                (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND)
            }
            Cmd::Delete(Delete::Rule { chain, handle }) => {
                body.extend(str_attr(NFTA_RULE_TABLE, table));
                body.extend(str_attr(NFTA_RULE_CHAIN, chain));
                body.extend(attr(NFTA_RULE_HANDLE, &handle.to_be_bytes()));
                (NFT_MSG_DELRULE, 0)
            }
            Cmd::Delete(Delete::Flush { chain }) => {
                body.extend(str_attr(NFTA_RULE_TABLE, table));
                body.extend(str_attr(NFTA_RULE_CHAIN, chain));
                (NFT_MSG_DELRULE, 0)
            }
            Cmd::Delete(Delete::Chain { chain }) => {
                body.extend(str_attr(NFTA_CHAIN_TABLE, table));
                body.extend(str_attr(NFTA_CHAIN_NAME, chain));
                (NFT_MSG_DELCHAIN, 0)
            }
        };
        let ack = if seq == first + cmds.len() as u32 { NLM_F_ACK } else { 0 };
        out.extend(message(nft_type(kind), NLM_F_REQUEST | flags | ack, seq, &body));
    }
    out.extend(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, first + cmds.len() as u32 + 1, &batch_hdr));
    Ok(out)
}

/// A string attribute of a payload that starts with `struct nfgenmsg`.
fn string_attr(payload: &[u8], kind: u16) -> Option<String> {
    attrs(payload.get(4..)?).find(|(k, _, _)| *k == kind).map(|(_, _, v)| attr_str(v))
}

/// The hook, priority, type and policy of an NFT_MSG_NEWCHAIN payload, if it has a hook.
fn parse_base_chain(payload: &[u8]) -> Option<BaseChain> {
    let (mut hook, mut prio, mut kind, mut policy) = (None, None, None, None);
    for (k, _, value) in attrs(payload.get(4..)?) {
        match k {
            NFTA_CHAIN_HOOK => {
                for (hk, _, hv) in attrs(value) {
                    let n = u32::from_be_bytes(hv.get(..4)?.try_into().ok()?);
                    match hk {
                        NFTA_HOOK_HOOKNUM => hook = Some(n),
                        NFTA_HOOK_PRIORITY => prio = Some(i64::from(n as i32)),
                        _ => {}
                    }
                }
            }
            NFTA_CHAIN_TYPE => kind = Some(attr_str(value)),
            NFTA_CHAIN_POLICY => policy = Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?)),
            _ => {}
        }
    }
    let hook = HOOKS.get(usize::try_from(hook?).ok()?)?;
    Some(BaseChain {
        kind: kind?,
        hook: hook.to_string(),
        prio: prio?,
        policy: if policy == Some(0) { "drop" } else { "accept" }.to_string(),
    })
}

/// A rule of `table` from an NFT_MSG_NEWRULE payload.
fn parse_rule(payload: &[u8], table: &str) -> Option<Rule> {
    let (mut t, mut chain, mut handle, mut comment, mut exprs) = (None, None, None, None, Vec::new());
    for (kind, _, value) in attrs(payload.get(4..)?) {
        match kind {
            NFTA_RULE_EXPRESSIONS => exprs = nftexpr::decode(value),
            NFTA_RULE_TABLE => t = Some(attr_str(value)),
            NFTA_RULE_CHAIN => chain = Some(attr_str(value)),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = udata_comment(value),
            _ => {}
        }
    }
    if t.as_deref() != Some(table) {
        return None;
    }
    Some(Rule { chain: chain?, handle: handle?, comment, exprs })
}

/// The comment in a rule's user data: type-length-value entries of one byte each.
fn udata_comment(mut udata: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = udata {
        let value = rest.get(..usize::from(*len))?;
        if *kind == UDATA_RULE_COMMENT {
            return Some(attr_str(value));
        }
        udata = &rest[usize::from(*len)..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::nlmsg::attr;

    #[test]
    fn delete_batch_bytes() {
        let b = batch(
            1,
            "t",
            &[
                Cmd::Delete(Delete::Rule { chain: "c".into(), handle: 5 }),
                Cmd::Delete(Delete::Chain { chain: "c".into() }),
            ],
            7,
        )
        .unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // BATCH_BEGIN, REQUEST, seq 7; nfgenmsg AF_UNSPEC, res_id NFNL_SUBSYS_NFTABLES (be)
            20, 0, 0, 0, 0x10, 0, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10,
            // DELRULE (10<<8|8), REQUEST, seq 8; inet; table "t", chain "c", handle 5 (be64)
            48, 0, 0, 0, 8, 10, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 2, 0, b'c', 0, 0, 0,
            12, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 5,
            // DELCHAIN (10<<8|5), REQUEST|ACK, seq 9; inet; table "t", name "c"
            36, 0, 0, 0, 5, 10, 5, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 3, 0, b'c', 0, 0, 0,
            // BATCH_END, seq 10
            20, 0, 0, 0, 0x11, 0, 1, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10,
        ];
        assert_eq!(b, want);
    }

    #[test]
    fn add_batch_bytes() {
        let base = BaseChain { kind: "nat".into(), hook: "postrouting".into(), prio: 100, policy: "accept".into() };
        let b = batch(
            1,
            "t",
            &[
                Cmd::AddTable { comment: Some("c".into()) },
                Cmd::AddChain { chain: "p".into(), base: Some(base) },
                Cmd::AddRule { chain: "p".into(), exprs: vec![Expr::Masq], comment: None },
            ],
            1,
        )
        .unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // BATCH_BEGIN, seq 1
            20, 0, 0, 0, 0x10, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10,
            // NEWTABLE (10<<8|0), REQUEST|CREATE, seq 2; inet; name "t", user data: comment "c"
            36, 0, 0, 0, 0, 10, 0x01, 0x04, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            8, 0, 6, 0, 0, 2, b'c', 0,
            // NEWCHAIN (10<<8|3), REQUEST|CREATE, seq 3; table "t", name "p",
            // hook { postrouting (4), priority 100 }, policy accept (1), type "nat"
            72, 0, 0, 0, 3, 10, 0x01, 0x04, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 3, 0, b'p', 0, 0, 0,
            20, 0, 4, 0, 8, 0, 1, 0, 0, 0, 0, 4, 8, 0, 2, 0, 0, 0, 0, 100,
            8, 0, 5, 0, 0, 0, 0, 1,
            8, 0, 7, 0, b'n', b'a', b't', 0,
            // NEWRULE (10<<8|6), REQUEST|CREATE|APPEND|ACK, seq 4; table "t", chain "p",
            // expressions { elem { name "masq", data {} } }
            60, 0, 0, 0, 6, 10, 0x05, 0x0c, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 2, 0, b'p', 0, 0, 0,
            24, 0, 4, 0, 20, 0, 1, 0, 9, 0, 1, 0, b'm', b'a', b's', b'q', 0, 0, 0, 0, 4, 0, 2, 0,
            // BATCH_END, seq 5
            20, 0, 0, 0, 0x11, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10,
        ];
        assert_eq!(b, want);
        let long = "x".repeat(300);
        assert!(batch(1, "t", &[Cmd::AddTable { comment: Some(long) }], 1).is_err(), "user data holds 255 bytes");
    }

    #[test]
    fn rules_and_comments() {
        let mut p = nfgenmsg(1, 0);
        p.extend(str_attr(NFTA_RULE_TABLE, "t"));
        p.extend(str_attr(NFTA_RULE_CHAIN, "pods"));
        p.extend(attr(NFTA_RULE_HANDLE, &42u64.to_be_bytes()));
        p.extend(attr(4, &[0; 8])); // expressions: none that parse
        // user data: an unknown entry, then the comment "c1\0"
        p.extend(attr(NFTA_RULE_USERDATA, &[9, 1, 0xff, UDATA_RULE_COMMENT, 3, b'c', b'1', 0]));
        assert_eq!(
            parse_rule(&p, "t"),
            Some(Rule { chain: "pods".into(), handle: 42, comment: Some("c1".into()), exprs: vec![] })
        );
        assert_eq!(parse_rule(&p, "other"), None);
        assert_eq!(udata_comment(&[UDATA_RULE_COMMENT, 9, b'x']), None);
        assert_eq!(udata_comment(&[]), None);
        assert_eq!(family_name(10), Some("ip6"));

        let mut c = nfgenmsg(7, 0);
        c.extend(str_attr(NFTA_CHAIN_TABLE, "nat"));
        c.extend(str_attr(NFTA_CHAIN_NAME, "PREROUTING"));
        let hook = [attr(NFTA_HOOK_HOOKNUM, &0u32.to_be_bytes()), attr(NFTA_HOOK_PRIORITY, &(-300i32).to_be_bytes())];
        c.extend(attr(NFTA_CHAIN_HOOK | crate::netlink::nlmsg::NLA_F_NESTED, &hook.concat()));
        c.extend(attr(NFTA_CHAIN_POLICY, &1u32.to_be_bytes()));
        c.extend(str_attr(NFTA_CHAIN_TYPE, "filter"));
        let want = BaseChain { kind: "filter".into(), hook: "prerouting".into(), prio: -300, policy: "accept".into() };
        assert_eq!(parse_base_chain(&c), Some(want));
        let mut plain = nfgenmsg(7, 0);
        plain.extend(str_attr(NFTA_CHAIN_NAME, "x"));
        assert_eq!(parse_base_chain(&plain), None);
        assert_eq!(family_number("bridge"), Some(7));
    }
}

/// Real kernel: a table written by `nft`, read and emptied here.
#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;
    use crate::netlink::in_new_netns;
    use std::process::Command;

    #[test]
    fn reads_and_deletes_what_nft_wrote() {
        in_new_netns(|| {
            let script = "table inet cbxnl {\n chain keep {\n type nat hook postrouting priority srcnat; policy accept;\n }\n chain c {\n counter comment \"a\"\n counter comment \"b\"\n counter\n }\n}\n";
            let status =
                Command::new("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().map(|mut c| {
                    use std::io::Write;
                    let _ = c.stdin.take().map(|mut i| i.write_all(script.as_bytes()));
                    c.wait()
                });
            match status {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    eprintln!("skipping: no nft");
                    return;
                }
                s => assert!(s.unwrap().unwrap().success()),
            }
            let mut s = Session::open().unwrap();
            assert!(s.tables().unwrap().contains(&("inet".to_string(), "cbxnl".to_string())));
            assert_eq!(s.contents("ip", "cbxnl").unwrap(), None);
            let c = s.contents("inet", "cbxnl").unwrap().unwrap();
            assert_eq!(c.chains, ["keep", "c"]);
            let nat = BaseChain { kind: "nat".into(), hook: "postrouting".into(), prio: 100, policy: "accept".into() };
            assert_eq!(c.base, [("keep".to_string(), nat)]);
            let comments: Vec<Option<&str>> = c.rules.iter().map(|r| r.comment.as_deref()).collect();
            assert_eq!(comments, [Some("a"), Some("b"), None]);

            let a = c.rules[0].handle;
            s.commit("inet", "cbxnl", &[Cmd::Delete(Delete::Rule { chain: "c".into(), handle: a })]).unwrap();
            // A failing command fails the whole batch: nothing of it is applied.
            let flush_and = |chain: &str| {
                [Cmd::Delete(Delete::Flush { chain: "c".into() }), Cmd::Delete(Delete::Chain { chain: chain.into() })]
            };
            let e = s.commit("inet", "cbxnl", &flush_and("nope")).unwrap_err();
            assert!(e.is_not_found(), "{e}");
            assert_eq!(s.contents("inet", "cbxnl").unwrap().unwrap().rules.len(), 2);
            s.commit("inet", "cbxnl", &flush_and("c")).unwrap();
            let c = s.contents("inet", "cbxnl").unwrap().unwrap();
            assert_eq!((c.chains, c.rules), (vec!["keep".to_string()], vec![]));
        });
    }
}
