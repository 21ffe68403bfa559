//! An SPF record, parsed strictly by RFC 7208's grammar (sections 4.6, 5, 6, 7.1): anything
//! outside it is a permerror, as the RFC requires, rather than a guess at what was meant.

use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        v4: u8,
        v6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        v4: u8,
        v6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4 {
        network: Ipv4Addr,
        len: u8,
    },
    Ip6 {
        network: Ipv6Addr,
        len: u8,
    },
    Exists(MacroString),
}

impl Mechanism {
    /// Mechanisms that query DNS count against the limit of ten (RFC 7208 4.6.4).
    pub fn looks_up(&self) -> bool {
        !matches!(
            self,
            Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub exp: Option<MacroString>,
}

/// One piece of a macro-string: literal text, or `%{letter digits r delimiters}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Macro {
        letter: char,
        /// Written in upper case: the value is URL-escaped.
        escape: bool,
        /// Keep only this many right-hand parts.
        keep: Option<usize>,
        reverse: bool,
        /// Split on these; `.` when none are given.
        delimiters: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacroString(pub Vec<Piece>);

/// Whether a TXT record is an SPF record at all (RFC 7208 4.5): `v=spf1` then a space or end.
pub fn is_spf(txt: &[u8]) -> bool {
    txt.len() >= 6 && txt[..6].eq_ignore_ascii_case(b"v=spf1") && (txt.len() == 6 || txt[6] == b' ')
}

/// Parses a record that `is_spf`.
pub fn parse(txt: &[u8]) -> Result<Record, String> {
    if let Some(bad) = txt.iter().find(|b| !(0x20..=0x7e).contains(*b)) {
        return Err(format!("the record contains the octet 0x{bad:02x}"));
    }
    // Only printable ASCII remains, so this cannot fail.
    let text = std::str::from_utf8(txt).map_err(|e| e.to_string())?;
    let mut record = Record::default();
    for term in text.split(' ').skip(1).filter(|t| !t.is_empty()) {
        if let Some((name, value)) = modifier(term) {
            let slot = match name.to_ascii_lowercase().as_str() {
                "redirect" => &mut record.redirect,
                "exp" => &mut record.exp,
                _ => {
                    // Unknown modifiers are ignored, but must be well formed.
                    macro_string(value, false)?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(format!("`{name}` appears twice"));
            }
            *slot = Some(domain_spec(value)?);
            continue;
        }
        record.directives.push(directive(term)?);
    }
    Ok(record)
}

/// `name=value` when the term is a modifier (name = ALPHA *(ALPHA / DIGIT / - / _ / .)).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some((name, value))
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes().first() {
        Some(b'+') => (Qualifier::Pass, &term[1..]),
        Some(b'-') => (Qualifier::Fail, &term[1..]),
        Some(b'~') => (Qualifier::SoftFail, &term[1..]),
        Some(b'?') => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(split);
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if args.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(domain_spec(required(args, term)?)?),
        "exists" => Mechanism::Exists(domain_spec(required(args, term)?)?),
        "ptr" => Mechanism::Ptr(match args {
            "" => None,
            _ => Some(domain_spec(required(args, term)?)?),
        }),
        "a" | "mx" => {
            let (domain, v4, v6) = domain_and_cidr(args)?;
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A { domain, v4, v6 }
            } else {
                Mechanism::Mx { domain, v4, v6 }
            }
        }
        "ip4" => {
            let value = required(args, term)?;
            let (addr, len) = match value.split_once('/') {
                Some((addr, len)) => (addr, cidr(len, 32)?),
                None => (value, 32),
            };
            let network = addr
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
            Mechanism::Ip4 { network, len }
        }
        "ip6" => {
            let value = required(args, term)?;
            let (addr, len) = match value.rsplit_once('/') {
                Some((addr, len)) => (addr, cidr(len, 128)?),
                None => (value, 128),
            };
            let network = addr
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
            Mechanism::Ip6 { network, len }
        }
        _ => return Err(format!("`{term}` is not a mechanism")),
    };
    Ok(Directive {
        qualifier,
        mechanism,
    })
}

/// The text after `:`, which must be there.
fn required<'a>(args: &'a str, term: &str) -> Result<&'a str, String> {
    args.strip_prefix(':')
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("`{term}` needs a value"))
}

/// `[":" domain-spec] [ip4-cidr] ["/" ip6-cidr]` after `a` or `mx`.
fn domain_and_cidr(args: &str) -> Result<(Option<MacroString>, u8, u8), String> {
    let (mut rest, mut v4, mut v6) = (args, 32u8, 128u8);
    // The CIDR lengths are a suffix of digits after `/` (IPv4) and `//` (IPv6); a domain-spec
    // may itself contain `/`, so take them from the end.
    if let Some((head, len)) = rest.rsplit_once("//")
        && !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
    {
        v6 = cidr(len, 128)?;
        rest = head;
    }
    if let Some((head, len)) = rest.rsplit_once('/')
        && !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
    {
        v4 = cidr(len, 32)?;
        rest = head;
    }
    let domain = match rest {
        "" => None,
        _ => Some(domain_spec(
            rest.strip_prefix(':')
                .filter(|d| !d.is_empty())
                .ok_or_else(|| format!("`{args}` is not a domain and CIDR length"))?,
        )?),
    };
    Ok((domain, v4, v6))
}

/// A CIDR length: no leading zeros, at most `max`.
fn cidr(text: &str, max: u8) -> Result<u8, String> {
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match text.parse::<u8>() {
        Ok(len) if valid && len <= max => Ok(len),
        _ => Err(format!("`/{text}` is not a CIDR length up to {max}")),
    }
}

/// domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand.
fn domain_spec(text: &str) -> Result<MacroString, String> {
    let parsed = macro_string(text, false)?;
    let valid_end = match parsed.0.last() {
        Some(Piece::Macro { .. }) => true,
        Some(Piece::Literal(literal)) => {
            // `%%`, `%_` and `%-` are macro-expands too, and end a domain-spec legally.
            text.ends_with("%%") || text.ends_with("%_") || text.ends_with("%-") || {
                let trimmed = literal.strip_suffix('.').unwrap_or(literal);
                match trimmed.rsplit_once('.') {
                    Some((_, top)) => is_toplabel(top),
                    None => false,
                }
            }
        }
        None => false,
    };
    if !valid_end {
        return Err(format!("`{text}` does not end in a valid top-level label"));
    }
    Ok(parsed)
}

/// toplabel = *alphanum ALPHA *alphanum / 1*alphanum "-" *( alphanum / "-" ) alphanum
fn is_toplabel(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && (bytes.iter().any(u8::is_ascii_alphabetic) || bytes.contains(&b'-'))
}

/// macro-string: literals (visible ASCII but `%`) and `%{...}`, `%%`, `%_`, `%-`. The letters
/// c, r and t belong to explanations only.
pub fn macro_string(text: &str, explanation: bool) -> Result<MacroString, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            // Explanation text may hold spaces; a record term cannot.
            if !(c.is_ascii_graphic() || (explanation && c == ' ')) {
                return Err(format!("`{c}` cannot appear in `{text}`"));
            }
            literal.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => literal.push('%'),
            Some('_') => literal.push(' '),
            Some('-') => literal.push_str("%20"),
            Some('{') => {
                let mut body = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => body.push(c),
                        None => return Err(format!("unterminated macro in `{text}`")),
                    }
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(macro_expand(&body, explanation)?);
            }
            _ => return Err(format!("a lone `%` in `{text}`")),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(MacroString(pieces))
}

fn macro_expand(body: &str, explanation: bool) -> Result<Piece, String> {
    let mut chars = body.chars();
    let letter = chars.next().ok_or("an empty macro")?;
    let lower = letter.to_ascii_lowercase();
    let allowed = match lower {
        's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'v' => true,
        'c' | 'r' | 't' => explanation,
        _ => false,
    };
    if !allowed {
        return Err(format!("`%{{{body}}}` is not a macro allowed here"));
    }
    let rest: String = chars.collect();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let mut tail = &rest[digits.len()..];
    let keep = match digits.as_str() {
        "" => None,
        d => match d.parse::<usize>() {
            Ok(0) => return Err("a macro keeps zero parts".into()),
            Ok(n) => Some(n),
            // Absurdly many parts: all of them.
            Err(_) => None,
        },
    };
    let reverse = match tail.strip_prefix(['r', 'R']) {
        Some(t) => {
            tail = t;
            true
        }
        None => false,
    };
    if !tail
        .chars()
        .all(|c| matches!(c, '.' | '-' | '+' | ',' | '/' | '_' | '='))
    {
        return Err(format!("`%{{{body}}}` has invalid delimiters"));
    }
    Ok(Piece::Macro {
        letter: lower,
        escape: letter.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: tail.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Record {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) {
        assert!(parse(text.as_bytes()).is_err(), "{text} should not parse");
    }

    #[test]
    fn records_parse_by_the_grammar() {
        let r = ok("v=spf1 ip4:192.0.2.0/24 a:mail.example.com/28//64 -mx ~all exp=why.%{d}");
        assert_eq!(r.directives.len(), 4);
        assert_eq!(
            r.directives[0].mechanism,
            Mechanism::Ip4 {
                network: "192.0.2.0".parse().unwrap(),
                len: 24
            }
        );
        assert!(matches!(
            r.directives[1].mechanism,
            Mechanism::A { v4: 28, v6: 64, .. }
        ));
        assert_eq!(r.directives[3].qualifier, Qualifier::SoftFail);
        assert!(r.exp.is_some());
        ok("v=spf1 a:foo:bar/baz.example.com");
        ok("v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all");
        ok("V=SPF1 A MX -ALL");
        ok("v=spf1 exists:%{ir}.%{v}._spf.%{d2}");
    }

    #[test]
    fn anything_outside_the_grammar_is_an_error() {
        err("v=spf1 ip4:1.2.3.4/33");
        err("v=spf1 ip4:1.2.3.4/032");
        err("v=spf1 a/24/64");
        err("v=spf1 a:abc.123");
        err("v=spf1 a:foo");
        err("v=spf1 1up=foo");
        err("v=spf1 =all");
        err("v=spf1 redirect=-all ?all");
        err("v=spf1 -all exp=a.test exp=b.test");
        err("v=spf1 a:%{x}.test");
        err("v=spf1 a:%{c}.test");
        err("v=spf1 a:100%.test");
        err("v=spf1 ip4:192.0.2.5\n include:x.test");
        err("v=spf1 ip6:::1/129");
        err("v=spf1 all:x");
        assert!(is_spf(b"v=spf1"));
        assert!(is_spf(b"v=spf1 -all"));
        assert!(!is_spf(b"v=spf10"));
        assert!(!is_spf(b"spf1"));
    }
}
