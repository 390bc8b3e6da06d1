//! A small regular-expression matcher for allowlists of sysctl names, with Go's (RE2) syntax.
//!
//! Supported: literal characters, `.`, bracket classes (`[a-z0-9_]`, `[^.]`, `[[:alpha:]]`),
//! the escapes `\d \w \s \D \W \S`, escaped punctuation (`\.`), groups (`( )`, `(?: )`),
//! alternation (`|`), the repeats `* + ?` and `{n} {n,} {n,m}` (each may be followed by `?`,
//! which changes nothing for a yes/no match), the anchors `^ $ \A \z` and word boundaries
//! `\b \B`, and the flags `(?i)` (case-insensitive, for ASCII letters), `(?m)`, `(?s)` and `(?U)` (which change
//! nothing for a name without line breaks, asked yes or no), set for the rest of their group or
//! for `(?flags:re)`, cleared with `-`. Matching is unanchored unless anchored, as with Go's
//! `regexp.MatchString`. What Go would accept but this does not (Unicode classes such as `\pL`)
//! is refused with an error rather than misread.

/// Go's limit on a counted repeat.
const MAX_REPEAT: u32 = 1000;
/// The most atoms a pattern may expand to once its counted repeats are unrolled.
const MAX_SIZE: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Char(char),
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Start,
    End,
    /// `\b` (or `\B`, negated): between a word character (`\w`) and a non-word one.
    WordBoundary {
        negated: bool,
    },
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    root: Node,
}

fn class_escape(c: char) -> Option<(bool, Vec<(char, char)>)> {
    let (negated, lower) = if c.is_ascii_uppercase() { (true, c.to_ascii_lowercase()) } else { (false, c) };
    let ranges = match lower {
        'd' => vec![('0', '9')],
        'w' => vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
        's' => vec![(' ', ' '), ('\t', '\n'), ('\x0c', '\r')],
        _ => return None,
    };
    Some((negated, ranges))
}

/// An escaped character that stands for itself: ASCII punctuation, as in Go.
fn punctuation_escape(e: char) -> Option<char> {
    (e.is_ascii() && !e.is_ascii_alphanumeric()).then_some(e)
}

fn posix_class(name: &str) -> Option<Vec<(char, char)>> {
    Some(match name {
        "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => vec![('A', 'Z'), ('a', 'z')],
        "digit" => vec![('0', '9')],
        "lower" => vec![('a', 'z')],
        "upper" => vec![('A', 'Z')],
        "space" => vec![(' ', ' '), ('\t', '\r')],
        "word" => vec![('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')],
        "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
        "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        _ => return None,
    })
}

/// Ranges outside `ranges` (within char's range), for a negated class inside brackets.
fn complement(mut ranges: Vec<(char, char)>) -> Vec<(char, char)> {
    ranges.sort_unstable();
    let mut out = Vec::new();
    let mut next = Some('\0');
    for (lo, hi) in ranges {
        if let Some(n) = next
            && n < lo
            && let Some(before) = char::from_u32(lo as u32 - 1)
        {
            out.push((n, before));
        }
        if next.is_some_and(|n| n <= hi) {
            next = char::from_u32(hi as u32 + 1);
        }
    }
    if let Some(n) = next {
        out.push((n, char::MAX));
    }
    out
}

struct Parser<'a> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
    /// `(?i)` in force.
    fold: bool,
}

/// `c` in both cases. ASCII letters only: sysctl names are ASCII, and Unicode's case tables
/// would cost the binary 29 KB.
fn case_variants(c: char) -> Vec<char> {
    if c.is_ascii_alphabetic() { vec![c, (c as u8 ^ 0x20) as char] } else { vec![c] }
}

/// `ranges` with the other case of every ASCII letter they hold.
fn fold_ranges(ranges: Vec<(char, char)>) -> Vec<(char, char)> {
    let mut out = ranges.clone();
    for (lo, hi) in ranges {
        let (lo, hi) = ((lo as u32).max(u32::from(b'A')), (hi as u32).min(u32::from(b'z')));
        for c in (lo..=hi).filter_map(char::from_u32).filter(char::is_ascii_alphabetic) {
            let other = (c as u8 ^ 0x20) as char;
            out.push((other, other));
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("error parsing regexp: {what} in `{}`", self.src)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars.get(self.pos..self.pos + n).is_some_and(|w| w.iter().copied().eq(s.chars())) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    /// alternation := sequence ('|' sequence)*
    fn alternation(&mut self, depth: usize) -> Result<Node, String> {
        if depth > 100 {
            return Err(self.err("expression nests too deeply"));
        }
        let mut branches = vec![self.sequence(depth)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.sequence(depth)?);
        }
        Ok(if branches.len() == 1 { branches.remove(0) } else { Node::Alt(branches) })
    }

    /// sequence := (atom repeat?)*
    fn sequence(&mut self, depth: usize) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            if self.repeat_op()?.is_some() {
                return Err(self.err("missing argument to repetition operator"));
            }
            let atom = self.atom(depth)?;
            let atom = match self.repeat_op()? {
                None => atom,
                Some(_) if matches!(atom, Node::Start | Node::End | Node::WordBoundary { .. }) => {
                    return Err(self.err("unsupported repetition of an anchor"));
                }
                Some((min, max)) => {
                    self.eat("?");
                    if self.repeat_op()?.is_some() {
                        return Err(self.err("invalid nested repetition operator"));
                    }
                    Node::Repeat { node: Box::new(atom), min, max }
                }
            };
            items.push(atom);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Node::Seq(items) })
    }

    /// `*`, `+`, `?` or a counted repeat at the cursor, consumed; a `{` that does not start a
    /// valid count is a literal, as in Go.
    fn repeat_op(&mut self) -> Result<Option<(u32, Option<u32>)>, String> {
        let op = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let Some((min, max, len)) = self.count_at(self.pos) else { return Ok(None) };
                if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
                    return Err(self.err("invalid repeat count"));
                }
                self.pos += len;
                return Ok(Some((min, max)));
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(op))
    }

    /// `{n}`, `{n,}` or `{n,m}` starting at `at`: (min, max, length).
    fn count_at(&self, at: usize) -> Option<(u32, Option<u32>, usize)> {
        let rest: String = self.chars.get(at..)?.iter().collect();
        let body = rest.strip_prefix('{')?.split('}').next()?;
        let len = body.chars().count() + 2;
        if !rest[1 + body.len()..].starts_with('}') {
            return None;
        }
        // Digits without a leading zero, as Go takes them; anything else makes `{` a literal.
        let num = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0')))
                .then(|| s.parse::<u32>().ok())
        };
        match body.split_once(',') {
            None => num(body).map(|n| (n.unwrap_or(u32::MAX), n.or(Some(u32::MAX)), len)),
            Some((lo, "")) => num(lo).map(|n| (n.unwrap_or(u32::MAX), None, len)),
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                Some((lo.unwrap_or(u32::MAX), Some(hi.unwrap_or(u32::MAX)), len))
            }
        }
    }

    fn atom(&mut self, depth: usize) -> Result<Node, String> {
        let Some(c) = self.next() else { return Err(self.err("unexpected end")) };
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                let outer = self.fold;
                if self.eat("?") && !self.eat(":") {
                    // `(?flags)`: for the rest of this group; `(?flags:re)`: for `re` only.
                    let fold = self.flags()?;
                    if self.eat(")") {
                        self.fold = fold;
                        return Ok(Node::Seq(Vec::new()));
                    }
                    self.pos += 1; // the `:` that ended the flags
                    self.fold = fold;
                }
                let inner = self.alternation(depth + 1);
                self.fold = outer;
                let inner = inner?;
                if self.next() != Some(')') {
                    return Err(self.err("missing closing )"));
                }
                inner
            }
            '\\' => {
                let e = self.next().ok_or_else(|| self.err("trailing backslash"))?;
                match (e, class_escape(e)) {
                    (_, Some((negated, ranges))) => Node::Class { negated, ranges },
                    ('A', None) => Node::Start,
                    ('z', None) => Node::End,
                    ('b', None) => Node::WordBoundary { negated: false },
                    ('B', None) => Node::WordBoundary { negated: true },
                    (e, None) => Node::Char(punctuation_escape(e).ok_or_else(|| self.err("unsupported escape"))?),
                }
            }
            '[' => self.class()?,
            c if self.fold && c.is_ascii_alphabetic() => {
                Node::Class { negated: false, ranges: case_variants(c).into_iter().map(|v| (v, v)).collect() }
            }
            c => Node::Char(c),
        })
    }

    /// The flags of `(?flags)` or `(?flags:`, after the `?`, up to (not past) the `)` or `:`;
    /// whether case folding is on after them.
    fn flags(&mut self) -> Result<bool, String> {
        let mut fold = self.fold;
        let (mut negate, mut any) = (false, false);
        loop {
            match self.peek() {
                Some(')' | ':') if any && !(negate && self.chars.get(self.pos - 1) == Some(&'-')) => return Ok(fold),
                Some('-') if !negate => negate = true,
                Some('i') => fold = !negate,
                Some('m' | 's' | 'U') => {}
                _ => return Err(self.err("invalid or unsupported Perl syntax `(?`")),
            }
            any = true;
            self.pos += 1;
        }
    }

    /// A `-` that makes a range (not one just before the closing `]`) comes next.
    fn range_follows(&self) -> bool {
        self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']')
    }

    /// A bracket class, its `[` already consumed.
    fn class(&mut self) -> Result<Node, String> {
        let negated = self.eat("^");
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.next().ok_or_else(|| self.err("missing closing ]"))?;
            if c == ']' && !first {
                break;
            }
            first = false;
            // `[:name:]`, as Go reads it: without a closing `:]` the `[` is itself a member.
            if c == '[' && self.peek() == Some(':') {
                let rest: String = self.chars[self.pos + 1..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[..end];
                    let (neg, name) = match name.strip_prefix('^') {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    let r = posix_class(name).ok_or_else(|| self.err("invalid character class range"))?;
                    ranges.extend(if neg { complement(r) } else { r });
                    self.pos += 1 + rest[..end + 2].chars().count();
                    continue;
                }
            }
            let lo = if c == '\\' {
                let e = self.next().ok_or_else(|| self.err("trailing backslash"))?;
                if let Some((neg, r)) = class_escape(e) {
                    if self.range_follows() {
                        return Err(self.err("invalid character class range"));
                    }
                    ranges.extend(if neg { complement(r) } else { r });
                    continue;
                }
                punctuation_escape(e).ok_or_else(|| self.err("unsupported escape"))?
            } else {
                c
            };
            if self.range_follows() {
                self.pos += 1;
                let mut hi = self.next().unwrap_or(lo);
                if hi == '\\' {
                    let e = self.next().ok_or_else(|| self.err("trailing backslash"))?;
                    hi = punctuation_escape(e).ok_or_else(|| self.err("invalid character class range"))?;
                }
                if hi < lo {
                    return Err(self.err("invalid character class range"));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        let ranges = if self.fold { fold_ranges(ranges) } else { ranges };
        Ok(Node::Class { negated, ranges })
    }
}

/// How many atoms `node` stands for once its repeats are unrolled (saturating).
fn size(node: &Node) -> u64 {
    match node {
        Node::Seq(v) | Node::Alt(v) => v.iter().map(size).fold(0, u64::saturating_add),
        Node::Repeat { node, min, max } => size(node).saturating_mul(u64::from(max.unwrap_or(*min).max(*min).max(1))),
        _ => 1,
    }
}

impl Pattern {
    pub fn parse(src: &str) -> Result<Pattern, String> {
        let mut p = Parser { src, chars: src.chars().collect(), pos: 0, fold: false };
        let root = p.alternation(0)?;
        if p.pos < p.chars.len() {
            return Err(p.err("unexpected )"));
        }
        if size(&root) > MAX_SIZE {
            return Err(p.err("expression too large"));
        }
        Ok(Pattern { root })
    }

    /// Whether the pattern matches anywhere in `s`.
    /// Unanchored, as Go's `MatchString`. Works on sets of text positions (where each part of
    /// the pattern can end, given where it can start), so no input makes it backtrack: the cost
    /// is polynomial in the text's length (a sysctl name's), never exponential.
    pub fn is_match(&self, s: &str) -> bool {
        let text: Vec<char> = s.chars().collect();
        let from = vec![true; text.len() + 1];
        step(&self.root, &text, &from).iter().any(|x| *x)
    }
}

/// The positions where `node` can end, starting from the positions `from`.
fn step(node: &Node, text: &[char], from: &[bool]) -> Vec<bool> {
    let len = text.len();
    match node {
        Node::Start => (0..=len).map(|p| from[p] && p == 0).collect(),
        Node::End => (0..=len).map(|p| from[p] && p == len).collect(),
        Node::WordBoundary { negated } => (0..=len)
            .map(|p| {
                let before = p > 0 && is_word(text[p - 1]);
                let after = p < len && is_word(text[p]);
                from[p] && ((before != after) != *negated)
            })
            .collect(),
        Node::Char(_) | Node::Any | Node::Class { .. } => {
            (0..=len).map(|p| p > 0 && from[p - 1] && atom_matches(node, text[p - 1])).collect()
        }
        Node::Seq(items) => {
            let mut at = from.to_vec();
            for item in items {
                if !at.iter().any(|x| *x) {
                    break;
                }
                at = step(item, text, &at);
            }
            at
        }
        Node::Alt(branches) => {
            let mut out = vec![false; len + 1];
            for b in branches {
                union(&mut out, &step(b, text, from));
            }
            out
        }
        Node::Repeat { node, min, max } => {
            let mut cur = from.to_vec();
            for _ in 0..*min {
                if !cur.iter().any(|x| *x) {
                    return cur;
                }
                cur = step(node, text, &cur);
            }
            let mut out = cur.clone();
            match max {
                Some(max) => {
                    for _ in *min..*max {
                        cur = step(node, text, &cur);
                        if !union(&mut out, &cur) {
                            break;
                        }
                    }
                }
                // Unbounded, of one character (`[a-z_]*`): one pass over the text.
                None if matches!(**node, Node::Char(_) | Node::Any | Node::Class { .. }) => {
                    for p in 0..len {
                        if out[p] && atom_matches(node, text[p]) {
                            out[p + 1] = true;
                        }
                    }
                }
                // Unbounded: grow from the newly reached positions until none are new (a
                // position is new at most once, so at most len + 1 rounds).
                None => loop {
                    let next = step(node, text, &cur);
                    cur = next.iter().zip(&out).map(|(n, o)| *n && !*o).collect();
                    if !union(&mut out, &next) {
                        break;
                    }
                },
            }
            out
        }
    }
}

/// `out |= add`; whether anything was added.
fn union(out: &mut [bool], add: &[bool]) -> bool {
    let mut grew = false;
    for (o, a) in out.iter_mut().zip(add) {
        if *a && !*o {
            *o = true;
            grew = true;
        }
    }
    grew
}

fn atom_matches(node: &Node, c: char) -> bool {
    match node {
        Node::Char(x) => *x == c,
        Node::Any => c != '\n',
        Node::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().is_match(s)
    }

    #[test]
    fn allowlist_style_patterns() {
        assert!(m(r"^net\.ipv4\.conf\.IFNAME\.[a-z_]*$", "net.ipv4.conf.IFNAME.arp_notify"));
        assert!(!m(r"^net\.ipv4\.conf\.IFNAME\.[a-z_]*$", "net.ipv4.conf.all.arp_notify"));
        assert!(m(r"^net\.ipv6\.conf\.IFNAME\.accept_ra$", "net.ipv6.conf.IFNAME.accept_ra"));
        assert!(m(r"net\.core\.somaxconn", "net.core.somaxconn"));
        assert!(m("somaxconn", "net.core.somaxconn"), "unanchored");
        assert!(!m("^somaxconn", "net.core.somaxconn"));
        assert!(m(r"^net\.ipv4\.ping_group_range$", "net.ipv4.ping_group_range"));
        assert!(!m(r"^net\.ipv4\.ping_group_range$", "net.ipv4.ping_group_rangeX"));
        assert!(m("^net.*$", "net.x.y"));
        assert!(m(r"^net\.ipv4\.conf\.[^.]+\.rp_filter$", "net.ipv4.conf.eth0.rp_filter"));
        assert!(!m(r"^net\.ipv4\.conf\.[^.]+\.rp_filter$", "net.ipv4.conf..rp_filter"));
        assert!(m(r"^a\d+b?$", "a12"));
        assert!(m(r"^[-a]\w*$", "-x_1"));
        assert!(m("", "anything"));
    }

    #[test]
    fn groups_alternation_and_counts() {
        let p = r"^net\.ipv4\.(ping_group_range|ip_unprivileged_port_start)$";
        assert!(m(p, "net.ipv4.ping_group_range"));
        assert!(m(p, "net.ipv4.ip_unprivileged_port_start"));
        assert!(!m(p, "net.ipv4.ip_forward"));
        assert!(m(
            r"^net\.ipv[46]\.conf\.IFNAME\.(?:accept_ra|arp_(notify|ignore))$",
            "net.ipv4.conf.IFNAME.arp_ignore"
        ));
        assert!(m("^a|b$", "ax") && m("^a|b$", "xb") && !m("^a|b$", "xa"));
        assert!(m("^(ab)+$", "ababab") && !m("^(ab)+$", "aba"));
        assert!(m("^(a|)+$", "aaa") && m("^(a*)*$", ""));
        assert!(m("^a{2}$", "aa") && !m("^a{2}$", "aaa") && !m("^a{2}$", "a"));
        assert!(m("^a{2,}$", "aaaa") && !m("^a{2,}$", "a"));
        assert!(m("^a{1,3}b$", "aaab") && !m("^a{1,3}b$", "aaaab"));
        assert!(m("^(x|yz){0,2}$", "yzx") && !m("^(x|yz){0,2}$", "xxx"));
        assert!(m("^a{,2}$", "a{,2}"), "not a count: literal, as in Go");
        assert!(m("^a*?b+?c??$", "aabb"), "lazy repeats match as greedy ones");
        assert!(m(r"\Anet\z", "net") && !m(r"\Anet\z", "nets"));
        assert!(m(r"^\D\W\S$", "a.x") && !m(r"^\D$", "5"));
        assert!(m("^[[:alpha:]_]+$", "ab_c") && !m("^[[:alpha:]]+$", "a1"));
        assert!(m(r"^[^[:digit:]]$", "x") && !m(r"^[^[:digit:]]$", "3"));
        assert!(m(r"^[[:^digit:]]$", "x") && !m(r"^[[:^digit:]]$", "3"));
        assert!(m(r"^[\D]$", "x") && !m(r"^[\D]$", "3"));
        // Without a closing `:]`, `[:` is two members, as in Go.
        assert!(m(r"^net\.[[:]$", "net.[") && m(r"^net\.[[:]$", "net.:") && m("^[[:a]+$", "a:["));
        assert!(m("^a{01}$", "a{01}"), "a count with a leading zero is a literal, as in Go");
        assert!(m(r"^\ \.$", " ."));
    }

    #[test]
    fn repetition_and_anchors_in_the_middle() {
        assert!(m("a*b", "b"));
        assert!(m("^a+$", "aaa"));
        assert!(!m("^a+$", ""));
        assert!(m("^x?y$", "y") && m("^x?y$", "xy") && !m("^x?y$", "xxy"));
        assert!(!m("a$b", "ab"));
    }

    #[test]
    fn no_input_makes_it_slow() {
        // A backtracking matcher takes exponential time on each of these.
        let text = "a".repeat(2000);
        let t = std::time::Instant::now();
        assert!(!m(".*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*x$", &text));
        assert!(!m("^(a|a)*(a*)*x$", &text));
        assert!(!m("^(a{1,10}){1,100}x", &text));
        assert!(!m("^(((a|b)*)*)*x", &text));
        // One character repeated is one pass, whatever the text's length.
        let long = format!("net.core.{}", "a".repeat(200_000));
        assert!(m(r"^net\.core\.[a-z_]*$", &long));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn unsupported_or_invalid_syntax_is_an_error() {
        for p in [
            "*a",
            "[a-",
            "a**",
            "a+*",
            "(a",
            "a)",
            "(?z)a",
            "(?)a",
            "(?i-)a",
            r"\pL",
            "a{1001}",
            "a{3,2}",
            "((a{100}){100}){100}",
            "^*",
            "[[:nope:]]",
            "[[::]]",
            "|*",
            r"[\d-z]",
            r"[a-\d]",
            r"\é",
            r"[\é]",
        ] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
        let e = Pattern::parse(r"\pLnet").unwrap_err();
        assert!(e.contains(r"\pLnet"), "{e}");
    }

    #[test]
    fn flags_and_word_boundaries_as_in_go() {
        let m = |p: &str, s: &str| Pattern::parse(p).unwrap().is_match(s);
        assert!(m("(?i)^NET\\.IPV4", "net.ipv4.ip_forward"));
        assert!(m("^(?i:NET)\\.ipv4", "net.ipv4"));
        assert!(!m("^(?i:NET)\\.IPV4", "net.ipv4"));
        assert!(m("(?i)^net[A-C]$", "netb") && m("(?i)^net[a-c]$", "netB"));
        assert!(!m("(?i)^net[^a-c]$", "netB"));
        assert!(m("(?i)^[x-\u{300}]$", "X") && m("(?i)^[\u{0}-B]$", "b"));
        assert!(m("^(?i)a(?-i)b$", "Ab") && !m("^(?i)a(?-i)b$", "AB"));
        // The flag ends with its group.
        assert!(m("^((?i)a)b$", "Ab") && !m("^((?i)a)b$", "AB"));
        assert!(m("(?ms)^net.", "net.") && m("(?U)^a+$", "aaa"));
        assert!(m(r"\bipv4\b", "net.ipv4.conf") && !m(r"\bipv4\b", "net.ipv4x"));
        assert!(m(r"ip\Bv4", "ipv4") && !m(r"ip\Bv4", "ip.v4"));
        assert!(m(r"^\b", "net") && !m(r"^\b", ".net"));
    }
}
