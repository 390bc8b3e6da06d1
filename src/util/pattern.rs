//! A small regular-expression matcher for allowlists of sysctl names.
//!
//! Supported: literal characters, `.`, bracket classes (`[a-z0-9_]`, `[^.]`), the escapes
//! `\d \w \s` and escaped punctuation (`\.`), the repeats `* + ?` after any atom, and the
//! anchors `^` and `$`. Matching is unanchored unless anchored, as with Go's
//! `regexp.MatchString`. Groups, alternation and counted repeats (`( ) | { }`) are refused
//! with an error rather than misread.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
    Class { negated: bool, ranges: Vec<(char, char)> },
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    One,
    Star,
    Plus,
    Opt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    nodes: Vec<(Atom, Repeat)>,
}

fn class_escape(c: char) -> Option<Vec<(char, char)>> {
    Some(match c {
        'd' => vec![('0', '9')],
        'w' => vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
        's' => vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r'), ('\x0c', '\x0c'), ('\x0b', '\x0b')],
        _ => return None,
    })
}

impl Pattern {
    pub fn parse(src: &str) -> Result<Pattern, String> {
        let unsupported = |c: char| format!("error parsing regexp: unsupported `{c}` in `{src}`");
        let mut nodes: Vec<(Atom, Repeat)> = Vec::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            let atom = match c {
                '.' => Atom::Any,
                '^' => Atom::Start,
                '$' => Atom::End,
                '(' | ')' | '|' | '{' | '}' => return Err(unsupported(c)),
                '*' | '+' | '?' => {
                    let Some(last) = nodes.last_mut() else {
                        return Err(format!("error parsing regexp: missing argument to repetition operator: `{c}`"));
                    };
                    if last.1 != Repeat::One || matches!(last.0, Atom::Start | Atom::End) {
                        return Err(unsupported(c));
                    }
                    last.1 = match c {
                        '*' => Repeat::Star,
                        '+' => Repeat::Plus,
                        _ => Repeat::Opt,
                    };
                    continue;
                }
                '\\' => {
                    let e =
                        chars.next().ok_or_else(|| format!("error parsing regexp: trailing backslash in `{src}`"))?;
                    match class_escape(e) {
                        Some(ranges) => Atom::Class { negated: false, ranges },
                        None if e.is_ascii_alphanumeric() => return Err(unsupported(e)),
                        None => Atom::Char(e),
                    }
                }
                '[' => {
                    let mut negated = false;
                    if chars.peek() == Some(&'^') {
                        chars.next();
                        negated = true;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = chars
                            .next()
                            .ok_or_else(|| format!("error parsing regexp: missing closing ] in `{src}`"))?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let lo = if c == '\\' {
                            let e = chars
                                .next()
                                .ok_or_else(|| format!("error parsing regexp: trailing backslash in `{src}`"))?;
                            if let Some(r) = class_escape(e) {
                                ranges.extend(r);
                                continue;
                            }
                            e
                        } else {
                            c
                        };
                        let mut ahead = chars.clone();
                        if ahead.next() == Some('-') && ahead.peek().is_some_and(|n| *n != ']') {
                            chars.next();
                            let hi = chars.next().unwrap_or(lo);
                            let hi = if hi == '\\' { chars.next().unwrap_or(lo) } else { hi };
                            if hi < lo {
                                return Err(format!("error parsing regexp: invalid character class range in `{src}`"));
                            }
                            ranges.push((lo, hi));
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    Atom::Class { negated, ranges }
                }
                c => Atom::Char(c),
            };
            nodes.push((atom, Repeat::One));
        }
        Ok(Pattern { nodes })
    }

    /// Whether the pattern matches anywhere in `s`.
    /// Unanchored, as Go's `MatchString`. Runs in O(pattern × text): the set of positions each
    /// node can end at is computed once, so no input makes it backtrack.
    pub fn is_match(&self, s: &str) -> bool {
        let text: Vec<char> = s.chars().collect();
        let mut at = vec![true; text.len() + 1];
        for (atom, repeat) in &self.nodes {
            at = step(atom, *repeat, &text, &at);
            if !at.iter().any(|x| *x) {
                return false;
            }
        }
        true
    }
}

/// The positions reachable after one node, from the positions `from`.
fn step(atom: &Atom, repeat: Repeat, text: &[char], from: &[bool]) -> Vec<bool> {
    let len = text.len();
    match atom {
        Atom::Start => return (0..=len).map(|p| from[p] && p == 0).collect(),
        Atom::End => return (0..=len).map(|p| from[p] && p == len).collect(),
        _ => {}
    }
    let one = |src: &[bool]| -> Vec<bool> {
        (0..=len).map(|p| p > 0 && src[p - 1] && atom_matches(atom, text[p - 1])).collect()
    };
    match repeat {
        Repeat::One => one(from),
        Repeat::Opt => one(from).iter().zip(from).map(|(a, b)| *a || *b).collect(),
        Repeat::Star | Repeat::Plus => {
            let mut out = if repeat == Repeat::Star { from.to_vec() } else { one(from) };
            for p in 0..len {
                if out[p] && atom_matches(atom, text[p]) {
                    out[p + 1] = true;
                }
            }
            out
        }
    }
}

fn atom_matches(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Char(x) => *x == c,
        Atom::Any => c != '\n',
        Atom::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
        Atom::Start | Atom::End => false,
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
    fn repetition_and_anchors_in_the_middle() {
        assert!(m("a*b", "b"));
        assert!(m("^a+$", "aaa"));
        assert!(!m("^a+$", ""));
        assert!(m("^x?y$", "y") && m("^x?y$", "xy") && !m("^x?y$", "xxy"));
        assert!(!m("a$b", "ab"));
    }

    #[test]
    fn no_input_makes_it_slow() {
        // A backtracking matcher takes exponential time here.
        let p = ".*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*x$";
        let text = "a".repeat(5000);
        let t = std::time::Instant::now();
        assert!(!m(p, &text));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn unsupported_syntax_is_an_error() {
        for p in ["(a|b)", "a{2}", "a|b", "*a", "[a-", r"\b", "a**"] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
    }
}
