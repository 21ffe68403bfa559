//! The message body of DATA (RFC 5321 4.1.1.4): read until CRLF.CRLF, undo dot-stuffing, and note
//! what makes a body unacceptable without stopping the read, so the reply comes only after the
//! client finished sending (and the session stays in step).
//!
//! Only CRLF.CRLF ends the data: after a bare LF or CR a dot never starts the terminator, so
//! `\n.\n` or `\n.\r\n` cannot end the data early, and a body that tries to smuggle a second
//! message stays one message. What happens to it then is `smtp.bare_newline`: `normalize` (the
//! default, as Postfix 3.9) reads a bare LF or CR as a line end, stored as CRLF (a leading dot
//! after it is unstuffed, as clients such as Python's smtplib stuff it); `reject` refuses the
//! message whole. No byte beyond the terminator is consumed.

pub use crate::config::BareNewline;
use memchr::memchr2;

/// Why a complete body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooBig,
    BareLineEnding,
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line (after CRLF, or at the very beginning).
    LineStart,
    /// At the start of a line that followed a bare LF or CR (normalize): a dot here is stuffing,
    /// never the terminator.
    BareLineStart,
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
    /// After a `.` at the start of a line.
    Dot,
    /// After `.` CR at the start of a line.
    DotCr,
}

pub struct DataReader {
    at: At,
    bare_newline: BareNewline,
    body: Vec<u8>,
    max_size: usize,
    /// 0: no limit.
    max_line: usize,
    line_len: usize,
    too_big: bool,
    bare: bool,
    long_line: bool,
}

impl DataReader {
    pub fn new(max_size: usize, max_line: usize, bare_newline: BareNewline) -> Self {
        DataReader {
            at: At::LineStart,
            bare_newline,
            body: Vec::with_capacity(max_size.min(64 * 1024)),
            max_size,
            max_line,
            line_len: 0,
            too_big: false,
            bare: false,
            long_line: false,
        }
    }

    /// Consumes bytes up to the end-of-data marker. Returns `Some(n)` when the marker ended at
    /// `input[n - 1]` (bytes from `n` on belong to the next command), `None` when all of `input`
    /// was consumed and more is needed.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.at {
                At::LineStart if input[i] == b'.' => {
                    // A leading dot: either stuffing (removed) or the start of the terminator.
                    self.at = At::Dot;
                    self.line_len = 1;
                    i += 1;
                }
                At::BareLineStart => {
                    if input[i] == b'.' {
                        // Stuffing: dropped; the line is text whatever follows.
                        i += 1;
                        self.line_len = 1;
                    }
                    self.at = At::Text;
                }
                At::LineStart | At::Text => {
                    // Copy a run of ordinary bytes at once.
                    let rest = &input[i..];
                    let run = memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    self.push(&rest[..run]);
                    self.line_len += run;
                    i += run;
                    self.at = At::Text;
                    if let Some(&b) = input.get(i) {
                        i += 1;
                        self.line_len += 1;
                        if b == b'\r' {
                            self.at = At::Cr;
                        } else {
                            self.bare_line_end(b"\n");
                        }
                    }
                }
                At::Cr => {
                    let b = input[i];
                    if b == b'\n' {
                        i += 1;
                        self.line_len += 1;
                        self.push(b"\r\n");
                        self.end_line();
                    } else {
                        self.bare_line_end(b"\r");
                    }
                }
                At::Dot => {
                    if input[i] == b'\r' {
                        self.at = At::DotCr;
                        self.line_len += 1;
                        i += 1;
                    } else {
                        // Dot-stuffing: the first dot goes, the rest of the line is text.
                        self.at = At::Text;
                    }
                }
                At::DotCr => {
                    if input[i] == b'\n' {
                        self.at = At::LineStart;
                        return Some(i + 1);
                    }
                    // ".\r" then something else: a lone CR after the (removed) stuffing dot.
                    self.bare_line_end(b"\r");
                }
            }
        }
        None
    }

    /// A bare LF or CR (`ending`): a line end stored as CRLF (normalize), or kept and flagged
    /// (reject). Either way the next byte is not at a line start where a dot could end the data.
    fn bare_line_end(&mut self, ending: &[u8]) {
        match self.bare_newline {
            BareNewline::Normalize => {
                self.push(b"\r\n");
                self.end_line();
                self.at = At::BareLineStart;
            }
            BareNewline::Reject => {
                self.bare = true;
                self.push(ending);
                self.at = At::Text;
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.too_big || self.body.len() + bytes.len() > self.max_size {
            self.too_big = true;
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    fn end_line(&mut self) {
        if self.max_line != 0 && self.line_len > self.max_line {
            self.long_line = true;
        }
        self.line_len = 0;
        self.at = At::LineStart;
    }

    /// The body once the terminator was seen, or why it is refused (size first: it is the
    /// reason the client can act on).
    pub fn finish(self) -> Result<Vec<u8>, BodyError> {
        if self.too_big {
            Err(BodyError::TooBig)
        } else if self.bare {
            Err(BodyError::BareLineEnding)
        } else if self.long_line {
            Err(BodyError::LineTooLong)
        } else {
            Ok(self.body)
        }
    }
}

/// The same rules for a body that came in BDAT chunks (no stuffing, no terminator): with
/// `normalize`, bare line ends become CRLF; then the checks.
pub fn check_chunked(
    body: Vec<u8>,
    max_line: usize,
    bare_newline: BareNewline,
) -> Result<Vec<u8>, BodyError> {
    let body = match bare_newline {
        BareNewline::Normalize if memchr2(b'\r', b'\n', &body).is_some() => {
            crate::outbound::wire::line_ends_and_nul(&body, false)
        }
        _ => body,
    };
    check_lines(&body, max_line)?;
    Ok(body)
}

fn check_lines(body: &[u8], max_line: usize) -> Result<(), BodyError> {
    let mut line_start = 0;
    let mut i = 0;
    while let Some(pos) = memchr2(b'\r', b'\n', &body[i..]) {
        let at = i + pos;
        if body[at] == b'\n' || body.get(at + 1) != Some(&b'\n') {
            return Err(BodyError::BareLineEnding);
        }
        let len = at + 2 - line_start;
        if max_line != 0 && len > max_line {
            return Err(BodyError::LineTooLong);
        }
        i = at + 2;
        line_start = i;
    }
    if max_line != 0 && body.len() - line_start > max_line {
        return Err(BodyError::LineTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Option<usize>, Result<Vec<u8>, BodyError>) {
        let mut r = DataReader::new(1 << 20, 1000, BareNewline::Reject);
        let end = r.feed(input);
        (end, r.finish())
    }

    /// Feeds one byte at a time: the state machine must not depend on how reads split.
    fn read_bytewise(input: &[u8]) -> (Option<usize>, Result<Vec<u8>, BodyError>) {
        let mut r = DataReader::new(1 << 20, 1000, BareNewline::Reject);
        for (i, b) in input.iter().enumerate() {
            if r.feed(std::slice::from_ref(b)).is_some() {
                return (Some(i + 1), r.finish());
            }
        }
        (None, r.finish())
    }

    #[test]
    fn table_of_bodies() {
        type Case = (
            &'static [u8],
            Option<usize>,
            Result<&'static [u8], BodyError>,
        );
        let cases: &[Case] = &[
            (b".\r\n", Some(3), Ok(b"")),
            (b"Hello\r\n.\r\n", Some(10), Ok(b"Hello\r\n")),
            (b"a\r\n..b\r\n.\r\nMAIL", Some(11), Ok(b"a\r\n.b\r\n")),
            (b"..\r\n.\r\n", Some(7), Ok(b".\r\n")),
            (b"a\r\n.x\r\n.\r\n", Some(10), Ok(b"a\r\nx\r\n")),
            (b"a\r\n", None, Ok(b"a\r\n")),
            (
                b"a\n.\nb\r\n.\r\n",
                Some(10),
                Err(BodyError::BareLineEnding),
            ),
            (
                b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n",
                Some(25),
                Err(BodyError::BareLineEnding),
            ),
            (
                b"a\r.\r\nb\r\n.\r\n",
                Some(11),
                Err(BodyError::BareLineEnding),
            ),
            (
                b"a\r\n.\rb\r\n.\r\n",
                Some(11),
                Err(BodyError::BareLineEnding),
            ),
            (b"a\r\n.\n.\r\n", None, Err(BodyError::BareLineEnding)),
        ];
        for (input, end, expected) in cases {
            for (how, (got_end, got)) in [
                ("whole", read_all(input)),
                ("bytewise", read_bytewise(input)),
            ] {
                assert_eq!(
                    got_end,
                    *end,
                    "{how} end of {:?}",
                    String::from_utf8_lossy(input)
                );
                match (expected, got) {
                    (Ok(want), Ok(got)) => assert_eq!(
                        got,
                        want.to_vec(),
                        "{how} {:?}",
                        String::from_utf8_lossy(input)
                    ),
                    (Err(want), Err(got)) => assert_eq!(got, *want),
                    (want, got) => panic!(
                        "{how} {:?}: want {want:?}, got {got:?}",
                        String::from_utf8_lossy(input)
                    ),
                }
            }
        }
    }

    #[test]
    fn size_and_line_limits() {
        let mut r = DataReader::new(10, 1000, BareNewline::Reject);
        assert_eq!(r.feed(b"0123456789abc\r\n.\r\n"), Some(18));
        assert_eq!(r.finish(), Err(BodyError::TooBig));

        let mut exact = DataReader::new(7, 1000, BareNewline::Reject);
        assert_eq!(exact.feed(b"12345\r\n.\r\n"), Some(10));
        assert_eq!(exact.finish().unwrap(), b"12345\r\n");

        let line = [b'x'; 998];
        let mut ok = DataReader::new(1 << 20, 1000, BareNewline::Reject);
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(ok.feed(&input).is_some());
        assert!(ok.finish().is_ok());

        let mut long = DataReader::new(1 << 20, 1000, BareNewline::Reject);
        let mut input = vec![b'x'; 999];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(long.feed(&input).is_some());
        assert_eq!(long.finish(), Err(BodyError::LineTooLong));

        let mut unlimited = DataReader::new(1 << 20, 0, BareNewline::Reject);
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(unlimited.feed(&input).is_some());
        assert!(unlimited.finish().is_ok());
    }

    #[test]
    fn chunked_bodies_follow_the_same_rules() {
        let check = |body: &[u8], max: usize| {
            check_chunked(body.to_vec(), max, BareNewline::Reject).map(|_| ())
        };
        assert_eq!(check(b"a\r\nb\r\n", 1000), Ok(()));
        assert_eq!(check(b"", 1000), Ok(()));
        assert_eq!(check(b"a\nb\r\n", 1000), Err(BodyError::BareLineEnding));
        assert_eq!(check(b"a\rb\r\n", 1000), Err(BodyError::BareLineEnding));
        assert_eq!(check(b"a\r", 1000), Err(BodyError::BareLineEnding));
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n");
        assert_eq!(check(&long, 1000), Err(BodyError::LineTooLong));
        assert_eq!(check(&[b'y'; 1001], 1000), Err(BodyError::LineTooLong));
        assert_eq!(
            check_chunked(b"a\nb\rc\r\n".to_vec(), 0, BareNewline::Normalize),
            Ok(b"a\r\nb\r\nc\r\n".to_vec())
        );
    }

    fn normalized(input: &[u8]) -> (Option<usize>, Result<Vec<u8>, BodyError>) {
        let mut r = DataReader::new(1 << 20, 0, BareNewline::Normalize);
        let end = r.feed(input);
        (end, r.finish())
    }

    #[test]
    fn normalize_reads_bare_line_ends_but_only_crlf_dot_crlf_ends_the_data() {
        // (input, whether it holds the end of data (always its last bytes), the body)
        let cases: &[(&[u8], bool, &[u8])] = &[
            (b"a\nb\r\n.\r\n", true, b"a\r\nb\r\n"),
            // "\n.\r\n" is not the end: the dot after a bare LF is stuffing.
            (b"a\n.\r\nb\r\n.\r\n", true, b"a\r\n\r\nb\r\n"),
            (b"a\n..b\r\n.\r\n", true, b"a\r\n.b\r\n"),
            (b"x\r.\rM\r\n.\r\n", true, b"x\r\n\r\nM\r\n"),
            (b"a\n.\n", false, b""),
        ];
        for (input, ends, body) in cases {
            let (got_end, got) = normalized(input);
            let end = ends.then_some(input.len());
            assert_eq!(got_end, end, "{:?}", String::from_utf8_lossy(input));
            if *ends {
                assert_eq!(
                    got.unwrap(),
                    body.to_vec(),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        // Split anywhere, the same.
        let input = b"a\n.\r\nb\r\n.\r\n";
        let mut r = DataReader::new(1 << 20, 0, BareNewline::Normalize);
        let mut end = None;
        for (i, b) in input.iter().enumerate() {
            if r.feed(std::slice::from_ref(b)).is_some() {
                end = Some(i + 1);
                break;
            }
        }
        assert_eq!(end, Some(input.len()));
        assert_eq!(r.finish().unwrap(), b"a\r\n\r\nb\r\n");
    }
}
