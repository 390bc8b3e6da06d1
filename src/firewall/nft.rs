//! Talking to nftables: one batch of commands per operation, applied atomically, and tables
//! read back with their rules.
//!
//! Batches are built with `serde_json::json!` in libnftables' JSON schema; rules are lists of
//! expressions made by the small helpers at the end of this file. The runner is a trait so
//! rule builders can be tested against a recording fake. The real one speaks netlink
//! (src/netlink/nftables.rs): rules are compiled to what `nft` would send for them, and read
//! back into the JSON `nft -j list` prints (compile.rs). A batch or a table holding anything
//! outside that set goes through `nft -j -f -` and `nft -j list table` instead.

use crate::cni::CniError;
use crate::netlink::nftables;
use nix::libc::{EAFNOSUPPORT, EINVAL, EMSGSIZE, EOPNOTSUPP, EPROTONOSUPPORT};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// nftables' limit on comment length, in bytes.
pub const COMMENT_MAX: usize = 128;

/// A table: address family and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub family: &'static str,
    pub name: &'static str,
}

impl Table {
    pub const fn new(family: &'static str, name: &'static str) -> Table {
        Table { family, name }
    }
}

/// A base chain's hook.
#[derive(Debug, Clone, Copy)]
pub struct Hook {
    pub kind: &'static str,
    pub hook: &'static str,
    pub prio: i32,
}

/// Standard priorities (nft's symbolic names).
pub mod prio {
    pub const DSTNAT: i32 = -100;
    pub const FILTER: i32 = 0;
    pub const SRCNAT: i32 = 100;
}

/// One transaction: its commands in nft's JSON, and the same for netlink while they all name
/// one table and every rule compiles (`nl_whole`).
#[derive(Debug, Clone)]
pub struct Batch {
    cmds: Vec<Value>,
    nl: Option<(Table, Vec<nftables::Cmd>)>,
    nl_whole: bool,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { cmds: Vec::new(), nl: None, nl_whole: true }
    }
}

/// Trim a comment to what nftables accepts, on a character boundary.
pub fn clip_comment(s: &str) -> String {
    let mut end = s.len().min(COMMENT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Whether a listed rule's `comment` is `wanted` as it was written (every written comment is
/// clipped, so the comparison is against the clipped form).
pub fn comment_is(comment: &str, wanted: &str) -> bool {
    comment == clip_comment(wanted)
}

/// Refuse a comment that alone identifies its rules when nftables could not hold it whole: a
/// clipped one could name another owner's rules too.
pub fn check_whole_comment(what: &str, comment: &str) -> Result<(), CniError> {
    if comment.len() > COMMENT_MAX {
        return Err(CniError::invalid_config(format!(
            "{what}: the rule comment \"{}...\" is {} bytes, more than the {COMMENT_MAX} nftables allows",
            clip_comment(comment),
            comment.len()
        )));
    }
    Ok(())
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Record `cmd` (None: not expressible over netlink) for table `t`.
    fn push_nl(&mut self, t: Table, cmd: Option<nftables::Cmd>) {
        match (cmd, &mut self.nl) {
            (Some(c), None) => self.nl = Some((t, vec![c])),
            (Some(c), Some((have, v))) if *have == t => v.push(c),
            _ => self.nl_whole = false,
        }
    }

    /// Create the table if it is missing (an existing table is left as it is).
    pub fn add_table(&mut self, t: Table, comment: Option<&str>) -> &mut Self {
        let mut o = json!({"family": t.family, "name": t.name});
        let comment = comment.map(clip_comment);
        if let Some(c) = &comment {
            o["comment"] = json!(c);
        }
        self.cmds.push(json!({"add": {"table": o}}));
        self.push_nl(t, Some(nftables::Cmd::AddTable { comment }));
        self
    }

    /// Create a chain if it is missing; a base chain when `hook` is given (policy accept).
    pub fn add_chain(&mut self, t: Table, name: &str, hook: Option<Hook>) -> &mut Self {
        let mut o = json!({"family": t.family, "table": t.name, "name": name});
        if let Some(h) = hook {
            o["type"] = json!(h.kind);
            o["hook"] = json!(h.hook);
            o["prio"] = json!(h.prio);
            o["policy"] = json!("accept");
        }
        self.cmds.push(json!({"add": {"chain": o}}));
        let base = hook.map(|h| nftables::BaseChain {
            kind: h.kind.to_string(),
            hook: h.hook.to_string(),
            prio: i64::from(h.prio),
            policy: "accept".to_string(),
        });
        self.push_nl(t, Some(nftables::Cmd::AddChain { chain: name.to_string(), base }));
        self
    }

    /// `add_chain` for a chain `listing` (the table as it is) does not show. Adding a chain
    /// that exists is not a no-op for the kernel: it records an update, and the nft run that
    /// commits one waits, when it closes its netlink socket, for an RCU grace period (about
    /// 10 ms) while the kernel frees the record.
    /// A base chain counts as there only with the same type, hook and priority and an accept
    /// policy: otherwise `add chain` is sent, which fails loudly or sets the policy back.
    pub fn add_missing_chain(
        &mut self,
        t: Table,
        name: &str,
        hook: Option<Hook>,
        listing: Option<&Listing>,
    ) -> &mut Self {
        let there = listing.is_some_and(|l| match hook {
            None => l.has_chain(name),
            Some(h) => l.base.iter().any(|(n, b)| {
                n == name && b.kind == h.kind && b.hook == h.hook && b.prio == i64::from(h.prio) && b.policy == "accept"
            }),
        });
        if !there {
            self.add_chain(t, name, hook);
        }
        self
    }

    pub fn flush_chain(&mut self, t: Table, name: &str) -> &mut Self {
        self.cmds.push(json!({"flush": {"chain": {"family": t.family, "table": t.name, "name": name}}}));
        self.push_nl(t, Some(nftables::Cmd::Delete(nftables::Delete::Flush { chain: name.to_string() })));
        self
    }

    pub fn delete_chain(&mut self, t: Table, name: &str) -> &mut Self {
        self.cmds.push(json!({"delete": {"chain": {"family": t.family, "table": t.name, "name": name}}}));
        self.push_nl(t, Some(nftables::Cmd::Delete(nftables::Delete::Chain { chain: name.to_string() })));
        self
    }

    /// Append a rule made of `expr` to `chain`.
    pub fn add_rule(&mut self, t: Table, chain: &str, expr: Vec<Value>, comment: Option<&str>) -> &mut Self {
        let comment = comment.map(clip_comment);
        let nl = super::compile::compile(t.family, &expr).map(|exprs| nftables::Cmd::AddRule {
            chain: chain.to_string(),
            exprs,
            comment: comment.clone(),
        });
        let mut o = json!({"family": t.family, "table": t.name, "chain": chain, "expr": expr});
        if let Some(c) = comment {
            o["comment"] = json!(c);
        }
        self.cmds.push(json!({"add": {"rule": o}}));
        self.push_nl(t, nl);
        self
    }

    /// Make `chain` hold exactly `rules`, in order: flushed and written again, unless
    /// `listing` (the table as it is) shows that it already does. Rewriting an unchanged chain
    /// is not free: deleted rules, like updated chains, leave the nft run waiting for an RCU
    /// grace period when it closes its netlink socket (see `add_missing_chain`).
    pub fn set_chain_rules(
        &mut self,
        t: Table,
        chain: &str,
        rules: &[RuleSpec<'_>],
        listing: Option<&Listing>,
    ) -> &mut Self {
        if listing.is_some_and(|l| l.chain_holds(chain, rules)) {
            return self;
        }
        self.flush_chain(t, chain);
        for (expr, comment) in rules {
            self.add_rule(t, chain, expr.clone(), *comment);
        }
        self
    }

    pub fn delete_rule(&mut self, t: Table, chain: &str, handle: u64) -> &mut Self {
        self.cmds
            .push(json!({"delete": {"rule": {"family": t.family, "table": t.name, "chain": chain, "handle": handle}}}));
        self.push_nl(t, Some(nftables::Cmd::Delete(nftables::Delete::Rule { chain: chain.to_string(), handle })));
        self
    }

    /// The batch as netlink commands in one table, when it is all in one table and every
    /// rule compiles.
    fn commands(&self) -> Option<(Table, &[nftables::Cmd])> {
        let (t, cmds) = self.nl.as_ref().filter(|_| self.nl_whole)?;
        Some((*t, cmds))
    }

    /// The JSON document `nft -j -f -` reads.
    pub fn to_json(&self) -> String {
        json!({"nftables": self.cmds}).to_string()
    }
}

/// A rule to write: its expressions and comment.
pub type RuleSpec<'a> = (Vec<Value>, Option<&'a str>);

/// A rule as listed: where it is, its handle and comment, and its expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    pub expr: Value,
}

/// A table as listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub chains: Vec<String>,
    /// The base chains among `chains`, by name.
    pub base: Vec<(String, nftables::BaseChain)>,
    pub rules: Vec<ListedRule>,
}

impl Listing {
    /// Parse `nft -j list table` output.
    pub fn parse(text: &str) -> Result<Listing, CniError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| CniError::internal(format!("failed to parse nft JSON output: {e}")))?;
        let mut out = Listing::default();
        for item in v.get("nftables").and_then(Value::as_array).into_iter().flatten() {
            if let Some(c) = item.get("chain") {
                if let Some(name) = c.get("name").and_then(Value::as_str) {
                    let text = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
                    if let (Some(kind), Some(hook), Some(prio)) = (text("type"), text("hook"), c.get("prio")) {
                        let policy = text("policy").unwrap_or_else(|| "accept".into());
                        let prio = prio.as_i64().unwrap_or(i64::MIN);
                        out.base.push((name.to_string(), nftables::BaseChain { kind, hook, prio, policy }));
                    }
                    out.chains.push(name.to_string());
                }
            } else if let Some(r) = item.get("rule") {
                out.rules.push(ListedRule {
                    chain: r.get("chain").and_then(Value::as_str).unwrap_or_default().to_string(),
                    handle: r.get("handle").and_then(Value::as_u64).unwrap_or_default(),
                    comment: r.get("comment").and_then(Value::as_str).map(str::to_string),
                    expr: r.get("expr").cloned().unwrap_or(Value::Null),
                });
            }
        }
        Ok(out)
    }

    /// Whether `chain` exists and holds exactly `rules` (expressions as nft lists them, and
    /// comments), in order.
    pub fn chain_holds(&self, chain: &str, rules: &[RuleSpec<'_>]) -> bool {
        let mut have = self.rules.iter().filter(|r| r.chain == chain);
        self.has_chain(chain)
            && rules.iter().all(|(expr, comment)| {
                have.next().is_some_and(|r| {
                    r.expr.as_array() == Some(expr) && r.comment.as_deref() == comment.map(clip_comment).as_deref()
                })
            })
            && have.next().is_none()
    }

    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c == name)
    }

    /// Rules of `chain` whose comment satisfies `keep`.
    pub fn rules_where<'a>(
        &'a self,
        chain: &'a str,
        keep: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain && r.comment.as_deref().is_some_and(&keep))
    }
}

/// What the plugins need from nftables.
pub trait Nft {
    /// Apply one batch atomically; an empty batch does nothing.
    fn apply(&self, batch: &Batch) -> Result<(), CniError>;
    /// Apply commands in nft's own syntax (for operator-written match conditions).
    fn apply_text(&self, script: &str) -> Result<(), CniError>;
    /// The chains and rules of a table; None when the table does not exist.
    fn list_table(&self, t: Table) -> Result<Option<Listing>, CniError>;
    /// The same without the rules' expressions (`Value::Null`): enough to find rules by their
    /// comment, and cheaper.
    fn list_rules(&self, t: Table) -> Result<Option<Listing>, CniError>;
}

/// The real thing: netlink, and `nft` for what netlink here does not express.
pub struct System;

const NFT_PATHS: &[&str] = &["/usr/sbin/nft", "/sbin/nft"];

/// `nft` at its usual places, then through PATH (plugins may run with a minimal PATH).
pub fn find_nft() -> Option<PathBuf> {
    let fixed = NFT_PATHS.iter().map(PathBuf::from);
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nft")).collect::<Vec<_>>())
        .unwrap_or_default();
    fixed.chain(from_path).find(|p| p.is_file())
}

/// The error when nft cannot be found.
pub fn not_installed() -> CniError {
    CniError::internal("nftables: the nft program was not found in /usr/sbin, /sbin or PATH (install nftables)")
}

/// Whether an error from this module says nft is missing.
pub fn is_not_installed(e: &CniError) -> bool {
    e.msg.starts_with("nftables: the nft program was not found")
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run_nft(args: &[&str], stdin: &[u8]) -> Result<Output, CniError> {
    let nft = find_nft().ok_or_else(not_installed)?;
    let mut child = Command::new(&nft)
        .args(args)
        .stdin(crate::util::stdin::prefilled(stdin).unwrap_or_else(Stdio::piped))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CniError::internal(format!("nftables: failed to run {}: {e}", nft.display())))?;
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::internal(format!("nftables: failed to wait for {}: {e}", nft.display())))?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The (family, name) of every table in this namespace; empty when they cannot be read.
pub fn tables() -> Vec<(String, String)> {
    nftables::Session::open().and_then(|mut s| s.tables()).unwrap_or_default()
}

fn failed(what: &str, out: &Output, input: &str) -> CniError {
    CniError::internal(format!("nftables: {what} failed: {}", out.stderr)).with_details(input.to_string())
}

impl Nft for System {
    fn apply(&self, batch: &Batch) -> Result<(), CniError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some((t, cmds)) = batch.commands() {
            // Only deletions: the path that retries without what a concurrent teardown removed.
            if cmds.iter().all(|c| matches!(c, nftables::Cmd::Delete(_))) {
                return delete(t.family, t.name, cmds);
            }
            match nftables::Session::open().and_then(|mut s| s.commit(t.family, t.name, cmds)) {
                Ok(()) => return Ok(()),
                // What could not be encoded, or the kernel refusing the encoding itself (an
                // older kernel, say), is `nft`'s to try when there is one; anything else, or
                // without `nft`, is the answer.
                Err(e)
                    if e.errno.is_none_or(|n| [EINVAL, EOPNOTSUPP, EMSGSIZE].contains(&n)) && find_nft().is_some() => {}
                Err(e) => {
                    let text = batch.to_json();
                    return Err(CniError::internal(format!("nftables: applying rules failed: {e}")).with_details(text));
                }
            }
        }
        let text = batch.to_json();
        let out = run_nft(&["-j", "-f", "-"], text.as_bytes())?;
        if !out.ok {
            return Err(failed("applying rules", &out, &text));
        }
        Ok(())
    }

    fn apply_text(&self, script: &str) -> Result<(), CniError> {
        let out = run_nft(&["-f", "-"], script.as_bytes())?;
        if !out.ok {
            return Err(failed("applying rules", &out, script));
        }
        Ok(())
    }

    fn list_rules(&self, t: Table) -> Result<Option<Listing>, CniError> {
        match nftables::Session::open().and_then(|mut s| s.contents(t.family, t.name)) {
            // No netfilter netlink (EPROTONOSUPPORT), or no nf_tables behind it (nfnetlink
            // refuses the request): there is no table to hold rules.
            Err(e) if e.errno.is_some_and(|n| [EPROTONOSUPPORT, EINVAL, EOPNOTSUPP, EAFNOSUPPORT].contains(&n)) => {
                Ok(None)
            }
            r => Ok(r?.map(|c| listing(t, c, false).unwrap_or_default())),
        }
    }

    fn list_table(&self, t: Table) -> Result<Option<Listing>, CniError> {
        // Over netlink when every rule reads back into the JSON nft would print for it.
        if let Ok(contents) = nftables::Session::open().and_then(|mut s| s.contents(t.family, t.name)) {
            let Some(c) = contents else { return Ok(None) };
            if let Some(l) = listing(t, c, true) {
                return Ok(Some(l));
            }
        }
        let out = run_nft(&["-j", "list", "table", t.family, t.name], b"")?;
        if !out.ok {
            if out.stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(failed(&format!("listing table {} {}", t.family, t.name), &out, ""));
        }
        Listing::parse(&out.stdout).map(Some)
    }
}

/// Apply the batch `build` makes knowing the table as `listing` showed it; when that fails
/// (the table changed in between: a chain it took as there is gone), once more knowing
/// nothing, which writes everything again.
pub fn apply_listed(
    nft: &dyn Nft,
    listing: Option<Listing>,
    build: impl Fn(Option<&Listing>) -> Batch,
) -> Result<(), CniError> {
    match nft.apply(&build(listing.as_ref())) {
        Err(_) if listing.is_some() => nft.apply(&build(None)),
        r => r,
    }
}

/// A table read over netlink as a listing: rules with their expressions as nft's JSON when
/// `exprs` (None if one of them is outside what decompile reads), else with `Value::Null`.
fn listing(t: Table, c: nftables::Contents, exprs: bool) -> Option<Listing> {
    let rules = c
        .rules
        .into_iter()
        .map(|r| {
            let expr = if exprs { Value::Array(super::compile::decompile(t.family, &r.exprs)?) } else { Value::Null };
            Some(ListedRule { chain: r.chain, handle: r.handle, comment: r.comment, expr })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Listing { chains: c.chains, base: c.base, rules })
}

/// A batch of deletions (`Cmd::Delete` only), over netlink (see src/netlink/nftables.rs for
/// why not through nft). What a concurrent teardown removed meanwhile fails the batch; it is
/// dropped from it and the rest tried once more.
fn delete(family: &str, table: &str, deletes: &[nftables::Cmd]) -> Result<(), CniError> {
    use nftables::{Cmd, Delete};
    let mut s = nftables::Session::open()?;
    match s.commit(family, table, deletes) {
        Err(e) if e.is_not_found() => {
            let Some(now) = s.contents(family, table)? else { return Ok(()) };
            let still: Vec<Cmd> = deletes
                .iter()
                .filter(|d| match d {
                    Cmd::Delete(Delete::Rule { chain, handle }) => {
                        now.rules.iter().any(|r| r.chain == *chain && r.handle == *handle)
                    }
                    Cmd::Delete(Delete::Flush { chain } | Delete::Chain { chain }) => now.chains.contains(chain),
                    _ => true,
                })
                .cloned()
                .collect();
            Ok(s.commit(family, table, &still)?)
        }
        r => Ok(r?),
    }
}

/// A recording fake for unit tests: tables are seeded with listings; applied batches are kept.
#[derive(Default)]
pub struct Fake {
    pub tables: RefCell<Vec<(Table, Listing)>>,
    pub applied: RefCell<Vec<Value>>,
    pub texts: RefCell<Vec<String>>,
    /// How many of the next batches to refuse (as nft does when the table changed meanwhile).
    pub refuse: std::cell::Cell<u32>,
}

impl Fake {
    pub fn with_table(t: Table, listing_json: &str) -> Fake {
        let f = Fake::default();
        f.tables.borrow_mut().push((t, Listing::parse(listing_json).expect("listing")));
        f
    }

    /// Every command applied so far, as JSON values.
    pub fn commands(&self) -> Vec<Value> {
        self.applied.borrow().iter().flat_map(|b| b["nftables"].as_array().cloned().unwrap_or_default()).collect()
    }
}

impl Nft for Fake {
    fn apply(&self, batch: &Batch) -> Result<(), CniError> {
        if self.refuse.get() > 0 {
            self.refuse.set(self.refuse.get() - 1);
            return Err(CniError::internal("nftables: applying rules failed: No such file or directory"));
        }
        if !batch.is_empty() {
            let v: Value = serde_json::from_str(&batch.to_json()).map_err(|e| CniError::internal(e.to_string()))?;
            self.applied.borrow_mut().push(v);
        }
        Ok(())
    }

    fn apply_text(&self, script: &str) -> Result<(), CniError> {
        self.texts.borrow_mut().push(script.to_string());
        Ok(())
    }

    fn list_table(&self, t: Table) -> Result<Option<Listing>, CniError> {
        Ok(self.tables.borrow().iter().find(|(k, _)| *k == t).map(|(_, l)| l.clone()))
    }

    fn list_rules(&self, t: Table) -> Result<Option<Listing>, CniError> {
        self.list_table(t)
    }
}

// ---- expressions --------------------------------------------------------------------------

/// `ip`/`ip6` for an address.
pub fn ip_proto(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

/// `<left> <op> <right>`.
pub fn cmp(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

pub fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

pub fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

/// An address, or a prefix when `len` is shorter than the address.
pub fn addr(ip: IpAddr, len: u8) -> Value {
    let full = if ip.is_ipv4() { 32 } else { 128 };
    if len >= full { json!(ip.to_string()) } else { json!({"prefix": {"addr": ip.to_string(), "len": len}}) }
}

/// `ip[6] saddr|daddr [!=] <ip/len>`.
pub fn match_addr(field: &str, op: &str, ip: IpAddr, len: u8) -> Value {
    cmp(op, payload(ip_proto(&ip), field), addr(ip, len))
}

/// A statement without arguments: `accept`, `drop`, `return`, `masquerade`.
pub fn stmt(v: &str) -> Value {
    json!({ v: null })
}

pub fn jump(target: &str) -> Value {
    json!({"jump": {"target": target}})
}

pub fn goto(target: &str) -> Value {
    json!({"goto": {"target": target}})
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table = Table::new("inet", "t");

    #[test]
    fn batch_for_netlink() {
        use nftables::{Cmd, Delete};
        let mut b = Batch::new();
        b.add_table(T, Some("c")).add_rule(T, "post", vec![stmt("masquerade")], Some("x")).delete_rule(T, "post", 7);
        let (t, cmds) = b.commands().unwrap();
        assert_eq!(t, T);
        assert_eq!(cmds[0], Cmd::AddTable { comment: Some("c".into()) });
        assert!(
            matches!(&cmds[1], Cmd::AddRule { chain, comment, .. } if chain == "post" && comment.as_deref() == Some("x"))
        );
        assert_eq!(cmds[2], Cmd::Delete(Delete::Rule { chain: "post".into(), handle: 7 }));
        // Another table in the same batch, or a rule outside what compiles: nft's to apply.
        let mut two = b.clone();
        two.flush_chain(Table::new("ip", "other"), "c");
        assert!(two.commands().is_none());
        let mut odd = b.clone();
        odd.add_rule(T, "post", vec![json!({"counter": null})], None);
        assert!(odd.commands().is_none());
        assert_eq!(odd.len(), 4, "nft still gets every command");
    }

    #[test]
    fn batch_json() {
        let mut b = Batch::new();
        b.add_table(T, Some("c"))
            .add_chain(T, "post", Some(Hook { kind: "nat", hook: "postrouting", prio: prio::SRCNAT }))
            .add_rule(T, "post", vec![stmt("masquerade")], Some("x"))
            .delete_rule(T, "post", 7);
        assert_eq!(
            b.to_json(),
            r#"{"nftables":[{"add":{"table":{"comment":"c","family":"inet","name":"t"}}},{"add":{"chain":{"family":"inet","hook":"postrouting","name":"post","policy":"accept","prio":100,"table":"t","type":"nat"}}},{"add":{"rule":{"chain":"post","comment":"x","expr":[{"masquerade":null}],"family":"inet","table":"t"}}},{"delete":{"rule":{"chain":"post","family":"inet","handle":7,"table":"t"}}}]}"#
        );
    }

    #[test]
    fn chains_already_right_are_not_rewritten() {
        let listing = Listing::parse(
            &json!({"nftables": [
                {"chain": {"family": "inet", "table": "t", "name": "post"}},
                {"chain": {"family": "inet", "table": "t", "name": "empty"}},
                {"rule": {"family": "inet", "table": "t", "chain": "post", "handle": 3, "expr": [{"return": null}]}},
                {"rule": {"family": "inet", "table": "t", "chain": "post", "handle": 4, "comment": "c",
                    "expr": [{"jump": {"target": "x"}}]}},
            ]})
            .to_string(),
        )
        .unwrap();
        let want: [RuleSpec<'_>; 2] = [(vec![stmt("return")], None), (vec![jump("x")], Some("c"))];
        assert!(listing.chain_holds("post", &want));
        assert!(listing.chain_holds("empty", &[]));
        assert!(!listing.chain_holds("missing", &[]));
        // Order, comments, a rule more or less: all count.
        assert!(!listing.chain_holds("post", &[want[1].clone(), want[0].clone()]));
        assert!(!listing.chain_holds("post", &[want[0].clone(), (vec![jump("x")], None)]));
        assert!(!listing.chain_holds("post", &want[..1]));
        assert!(!listing.chain_holds("empty", &want[..1]));

        let mut b = Batch::new();
        b.set_chain_rules(T, "post", &want, Some(&listing));
        assert!(b.is_empty());
        b.set_chain_rules(T, "post", &want[..1], Some(&listing));
        b.set_chain_rules(T, "new", &want[..1], None);
        let cmds: Vec<String> = b.cmds.iter().map(|c| c.to_string()).collect();
        assert_eq!(cmds.len(), 4);
        assert!(cmds[0].starts_with(r#"{"flush":{"chain""#) && cmds[0].contains(r#""name":"post""#));
        assert!(cmds[2].starts_with(r#"{"flush":{"chain""#) && cmds[2].contains(r#""name":"new""#));
    }

    #[test]
    fn base_chains_count_only_with_their_hook_and_an_accept_policy() {
        let listing = Listing::parse(
            &json!({"nftables": [
                {"chain": {"family": "inet", "table": "t", "name": "post",
                    "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
                {"chain": {"family": "inet", "table": "t", "name": "fwd",
                    "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
                {"chain": {"family": "inet", "table": "t", "name": "plain"}},
            ]})
            .to_string(),
        )
        .unwrap();
        let nat = Hook { kind: "nat", hook: "postrouting", prio: prio::SRCNAT };
        let fwd = Hook { kind: "filter", hook: "forward", prio: prio::FILTER };
        let mut b = Batch::new();
        b.add_missing_chain(T, "post", Some(nat), Some(&listing)).add_missing_chain(T, "plain", None, Some(&listing));
        assert!(b.is_empty());
        // Another priority, a drop policy, a regular chain where a base chain belongs.
        b.add_missing_chain(T, "post", Some(Hook { prio: 0, ..nat }), Some(&listing))
            .add_missing_chain(T, "fwd", Some(fwd), Some(&listing))
            .add_missing_chain(T, "plain", Some(fwd), Some(&listing));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn a_refused_batch_is_written_again_from_scratch() {
        let listing = Listing::parse(
            &json!({"nftables": [{"chain": {"family": "inet", "table": "t", "name": "c"}}]}).to_string(),
        )
        .unwrap();
        let build = |l: Option<&Listing>| {
            let mut b = Batch::new();
            b.add_missing_chain(T, "c", None, l).add_rule(T, "c", vec![stmt("accept")], None);
            b
        };
        let fake = Fake::default();
        fake.refuse.set(1);
        apply_listed(&fake, Some(listing.clone()), build).unwrap();
        let cmds = fake.commands();
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert!(cmds[0]["add"]["chain"].is_object());
        // Without a listing there is nothing to fall back from.
        let fake = Fake::default();
        fake.refuse.set(1);
        assert!(apply_listed(&fake, None, build).is_err());
    }

    #[test]
    fn comments_are_clipped_on_char_boundaries() {
        let long = "é".repeat(100);
        let c = clip_comment(&long);
        assert!(c.len() <= COMMENT_MAX);
        assert_eq!(c.len(), 128);
        assert_eq!(clip_comment("short"), "short");
    }

    #[test]
    fn addresses_and_prefixes() {
        assert_eq!(addr("10.0.0.1".parse().unwrap(), 32), json!("10.0.0.1"));
        assert_eq!(addr("10.0.0.0".parse().unwrap(), 24), json!({"prefix": {"addr": "10.0.0.0", "len": 24}}));
        assert_eq!(
            match_addr("saddr", "==", "fd00::1".parse().unwrap(), 128)["match"]["left"]["payload"]["protocol"],
            "ip6"
        );
    }

    #[test]
    fn listing_parse() {
        let l = Listing::parse(
            r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},{"table":{"family":"inet","name":"t","handle":1}},
            {"chain":{"family":"inet","table":"t","name":"c","handle":1}},
            {"rule":{"family":"inet","table":"t","chain":"c","handle":4,"comment":"a","expr":[]}},
            {"rule":{"family":"inet","table":"t","chain":"c","handle":5,"expr":[]}}]}"#,
        )
        .unwrap();
        assert!(l.has_chain("c"));
        assert_eq!(l.rules.len(), 2);
        assert_eq!(l.rules_where("c", |c| c == "a").map(|r| r.handle).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn missing_nft_is_recognised() {
        assert!(is_not_installed(&not_installed()));
    }
}
