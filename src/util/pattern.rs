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
    pub fn is_match(&self, s: &str) -> bool {
        let text: Vec<char> = s.chars().collect();
        (0..=text.len()).any(|start| match_here(&self.nodes, &text, start))
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

fn match_here(nodes: &[(Atom, Repeat)], text: &[char], pos: usize) -> bool {
    let Some(((atom, repeat), rest)) = nodes.split_first() else { return true };
    match atom {
        Atom::Start => return pos == 0 && match_here(rest, text, pos),
        Atom::End => return pos == text.len() && match_here(rest, text, pos),
        _ => {}
    }
    let (min, max) = match repeat {
        Repeat::One => (1, 1),
        Repeat::Opt => (0, 1),
        Repeat::Star => (0, usize::MAX),
        Repeat::Plus => (1, usize::MAX),
    };
    let mut n = 0;
    while n < max && pos + n < text.len() && atom_matches(atom, text[pos + n]) {
        n += 1;
    }
    // Greedy, backing off one character at a time.
    (min..=n).rev().any(|k| match_here(rest, text, pos + k))
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
    fn unsupported_syntax_is_an_error() {
        for p in ["(a|b)", "a{2}", "a|b", "*a", "[a-", r"\b", "a**"] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
    }
}
