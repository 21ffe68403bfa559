//! The header-like field blocks of report bodies: `message/delivery-status` (RFC 3464: a
//! per-message block, then one block per recipient, separated by blank lines) and
//! `message/feedback-report` (RFC 5965: one block). Folded lines are unfolded; names are
//! case-insensitive.

/// One block: its fields in order, names lower-cased.
pub type Block = Vec<(String, String)>;

/// The blocks of a report body, empty ones dropped.
pub fn blocks(body: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut block: Block = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !block.is_empty() {
                out.push(std::mem::take(&mut block));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        out.push(block);
    }
    out
}

/// The first field of that (lower-case) name.
pub fn get<'a>(block: &'a Block, name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A typed value (`rfc822; a@b`, `dns; mx.example`, `smtp; 550 ...`) without its type.
pub fn untyped(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') && !kind.contains('@') => rest.trim(),
        _ => value.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unfold_and_split_on_blank_lines() {
        let body = "Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: failed\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  user unknown\r\n\r\n";
        let b = blocks(body);
        assert_eq!(b.len(), 2);
        assert_eq!(
            get(&b[0], "reporting-mta").map(untyped),
            Some("mx.example.org")
        );
        assert_eq!(get(&b[1], "final-recipient").map(untyped), Some("a@b.test"));
        assert_eq!(
            get(&b[1], "diagnostic-code").map(untyped),
            Some("550 5.1.1 user unknown")
        );
    }
}
