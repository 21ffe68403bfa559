//! What agents look for in received mail: the verification code and the action links.
//!
//! Codes: every token shaped like a code (4-8 digits, digits split in groups, or 4-10 upper-case
//! letters and digits with at least one digit) is a candidate; its confidence comes from its
//! surroundings. A code keyword (in many languages) on the same line or just before it, the
//! subject naming a code, or the token standing alone on its line raise it; money, dates, times,
//! phone numbers, order and card numbers lower it. Candidates below `MIN_CONFIDENCE` are dropped.
//!
//! Links: from the HTML anchors (with their visible text) and the text body, classified by URL
//! and text as `unsubscribe`, `reset`, `magic_login`, `verify` or `other`; `List-Unsubscribe`
//! adds its URL.

use crate::ingest::risk::html::Link;
use crabmail_api::{Extracted, ExtractedCode, ExtractedLink, Header};
use regex::Regex;
use std::sync::LazyLock;

const MIN_CONFIDENCE: f64 = 0.5;
const MAX_LINKS: usize = 50;

fn re(pattern: &str) -> Regex {
    // ASCII word boundaries keep the regex engine on its fast path over non-ASCII mail.
    Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("extraction pattern compiles")
}

static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^\p{L}\p{N}@#$€£¥•*.,/:_-])((?:\d[ \-]?){3,7}\d|[A-Z0-9]{3,5}-[A-Z0-9]{3,5}|[A-Z0-9]{4,10})(?:$|[^\p{L}\p{N}@%€£¥/_-])",
    )
});
static CODE_WORD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(\bcodes?\b|\bcode:|one[- ]time|\botp\b|passcode|\bpin\b|2fa|two[- ]factor|\btoken\b|bestätigung|sicherheitscode|einmalcode|verifizierung|vérification|código|codigo|verificación|verificação|codice|verifica|verificatiecode|\bkod\b|doğrulama|код|подтвержд|验证码|驗證碼|確認コード|認証コード|인증|번호)",
    )
});
static NOT_A_CODE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(order|invoice|account|acct|card|ending in|ref(erence)?|ticket|case|tracking|phone|tel\b|fax|call|zip|postal|booking|reservation|flight|seat|room|customer (id|number)|member(ship)? (id|number)|serial|model|version|sku|item|receipt|transaction|amount|total|\$|€|£|usd|eur)\s*(no\.?|number|#|id|:)?\s*$",
    )
});
static URL: LazyLock<Regex> = LazyLock::new(|| re(r#"https?://[^\s<>"'\])]+"#));

/// Codes and links of one message. `text` is what a person sees (text body or visible HTML).
pub fn extract(
    subject: Option<&str>,
    text: &str,
    html_links: &[Link],
    headers: &[Header],
) -> Extracted {
    Extracted {
        codes: codes(subject.unwrap_or(""), text),
        links: links(text, html_links, headers),
    }
}

fn codes(subject: &str, text: &str) -> Vec<ExtractedCode> {
    let subject_has_word = CODE_WORD.is_match(subject);
    let mut found: Vec<ExtractedCode> = Vec::new();
    let mut consider = |value: String, confidence: f64| {
        if confidence < MIN_CONFIDENCE {
            return;
        }
        match found.iter_mut().find(|c| c.value == value) {
            Some(c) => c.confidence = c.confidence.max(confidence),
            None => found.push(ExtractedCode { value, confidence }),
        }
    };
    for (source, body) in [("subject", subject), ("text", text)] {
        let lines: Vec<&str> = body.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            for caps in CANDIDATE.captures_iter(line) {
                let Some(m) = caps.get(1) else { continue };
                let token = m.as_str();
                let value: String = token
                    .chars()
                    .filter(|c| !matches!(c, ' ' | '-') || token.contains(char::is_alphabetic))
                    .collect();
                if !plausible(&value) {
                    continue;
                }
                let before = &line[..m.start()];
                let after = &line[m.end()..];
                let previous = if n > 0 { lines[n - 1] } else { "" };
                let mut confidence: f64 = 0.2;
                let near_before = tail(before, 60);
                if CODE_WORD.is_match(near_before) || CODE_WORD.is_match(head(after, 40)) {
                    confidence += 0.5;
                } else if CODE_WORD.is_match(previous)
                    || (n > 1 && CODE_WORD.is_match(lines[n - 2]) && previous.trim().is_empty())
                {
                    confidence += 0.4;
                }
                if source == "subject" && subject_has_word {
                    confidence += 0.3;
                } else if subject_has_word {
                    confidence += 0.1;
                }
                if line.trim() == token.trim() {
                    confidence += 0.15;
                }
                if NOT_A_CODE.is_match(near_before) {
                    confidence -= 0.5;
                }
                if looks_like_date_or_time(before, after, &value) {
                    confidence -= 0.5;
                }
                consider(value, confidence.clamp(0.0, 0.99));
            }
        }
    }
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    for c in &mut found {
        c.confidence = (c.confidence * 100.0).round() / 100.0;
    }
    found
}

fn plausible(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let letters = value.chars().filter(char::is_ascii_alphabetic).count();
    if letters == 0 {
        return (4..=8).contains(&digits);
    }
    // Alphanumeric codes mix both; all-letter words in capitals ("HELLO") are not codes.
    digits >= 1 && (4..=12).contains(&(digits + letters))
}

fn looks_like_date_or_time(before: &str, after: &str, value: &str) -> bool {
    let year = value.len() == 4
        && value.chars().all(|c| c.is_ascii_digit())
        && matches!(&value[..2], "19" | "20");
    // 27/11, 10:30, 27.11.2026: digits joined to more digits by a date or time separator.
    let digit_before = |s: &str| s.chars().next_back().is_some_and(|c| c.is_ascii_digit());
    let joined = before
        .strip_suffix(['/', ':', '.'])
        .is_some_and(digit_before)
        || after
            .strip_prefix(['/', ':', '.'])
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    year || joined
}

fn tail(s: &str, chars: usize) -> &str {
    let start = s.char_indices().rev().nth(chars).map_or(0, |(i, _)| i);
    &s[start..]
}

fn head(s: &str, chars: usize) -> &str {
    let end = s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

fn links(text: &str, html_links: &[Link], headers: &[Header]) -> Vec<ExtractedLink> {
    let mut out: Vec<ExtractedLink> = Vec::new();
    let mut add = |url: &str, shown: Option<&str>, context: &str, forced: Option<&str>| {
        let url = url.trim_end_matches(['.', ',', ';', ')', '>']);
        if !(url.starts_with("http://") || url.starts_with("https://")) || out.len() >= MAX_LINKS {
            return;
        }
        if out.iter().any(|l| l.url == url) {
            return;
        }
        let kind = forced.unwrap_or_else(|| classify(url, shown.unwrap_or(""), context));
        out.push(ExtractedLink {
            url: url.to_owned(),
            kind: kind.to_owned(),
            text: shown.filter(|t| !t.is_empty()).map(str::to_owned),
        });
    };
    for link in html_links {
        add(&link.href, Some(&link.text), "", None);
    }
    for line in text.lines() {
        for m in URL.find_iter(line) {
            add(m.as_str(), None, &line[..m.start()], None);
        }
    }
    for header in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("List-Unsubscribe"))
    {
        for m in URL.find_iter(&header.value) {
            add(m.as_str(), None, "", Some("unsubscribe"));
        }
    }
    out
}

/// Link kinds, checked in this order: words in the URL, words in the link text or just before it.
const LINK_KINDS: &[(&str, &[&str], &[&str])] = &[
    (
        "unsubscribe",
        &[
            "unsubscribe",
            "opt-out",
            "optout",
            "opt_out",
            "/unsub",
            "email-preferences",
            "manage-preferences",
        ],
        &[
            "unsubscribe",
            "opt out",
            "abbestellen",
            "désabonner",
            "darse de baja",
            "cancelar suscripción",
        ],
    ),
    (
        "reset",
        &[
            "reset",
            "forgot",
            "recover",
            "password/new",
            "password/edit",
            "change-password",
            "new-password",
        ],
        &[
            "reset your password",
            "reset password",
            "choose a new password",
            "forgot your password",
            "passwort zurücksetzen",
            "réinitialiser",
            "restablecer",
        ],
    ),
    (
        "magic_login",
        &[
            "magic",
            "login?token",
            "signin?token",
            "sign-in?token",
            "/auth/callback",
            "/session/",
            "login_token",
            "one-click",
            "/sso/",
        ],
        &[
            "log in to",
            "sign in to",
            "log in now",
            "sign in now",
            "magic link",
            "login link",
            "sign-in link",
            "log me in",
            "sign me in",
        ],
    ),
    (
        "verify",
        &[
            "verify",
            "verification",
            "confirm",
            "activate",
            "activation",
            "validate",
            "email-confirm",
            "double-opt",
            "doi",
        ],
        &[
            "verify",
            "confirm",
            "activate",
            "validate",
            "bestätigen",
            "vérifier",
            "confirmer",
            "confirmar",
            "verificar",
            "verifica",
        ],
    ),
];

/// A login page with a token in its query is a magic link whatever its words.
const LOGIN_PATHS: &[&str] = &["login", "signin", "sign-in", "sign_in", "log-in", "/auth"];
const TOKEN_PARAMS: &[&str] = &["token=", "code=", "key=", "otp=", "t="];

fn classify(url: &str, shown: &str, context: &str) -> &'static str {
    let u = url.to_ascii_lowercase();
    let words = format!("{} {}", shown, tail(context, 80)).to_lowercase();
    let any = |hay: &str, needles: &[&str]| needles.iter().any(|n| hay.contains(n));
    for (kind, in_url, in_words) in LINK_KINDS {
        let login_with_token =
            *kind == "magic_login" && any(&u, LOGIN_PATHS) && any(&u, TOKEN_PARAMS);
        if any(&u, in_url) || login_with_token || any(&words, in_words) {
            return kind;
        }
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_values(subject: &str, text: &str) -> Vec<String> {
        codes(subject, text).into_iter().map(|c| c.value).collect()
    }

    #[test]
    fn codes_in_many_layouts_and_languages() {
        let cases = [
            (
                "Your verification code",
                "Your code is 482913. It expires in 10 minutes.",
                "482913",
            ),
            (
                "Sign in to Acme",
                "Enter this code to sign in:\n\n  730 214\n\nDidn't ask? Ignore this.",
                "730214",
            ),
            ("482913 is your Foo code", "Thanks for using Foo.", "482913"),
            (
                "Ihr Bestätigungscode",
                "Ihr Bestätigungscode lautet: 5819",
                "5819",
            ),
            (
                "Código de verificación",
                "Tu código de verificación es 771203",
                "771203",
            ),
            (
                "Confirm your email",
                "Use code K7Q-9XZ to confirm.",
                "K7Q-9XZ",
            ),
            ("Login", "Your one-time passcode: A1B2C3", "A1B2C3"),
            ("Код подтверждения", "Ваш код: 90817", "90817"),
            ("验证码", "您的验证码是 663201，5分钟内有效。", "663201"),
        ];
        for (subject, text, want) in cases {
            assert_eq!(
                code_values(subject, text).first().map(String::as_str),
                Some(want),
                "{subject} / {text}"
            );
        }
    }

    #[test]
    fn numbers_that_are_not_codes_are_left_out() {
        let text = "Order #123456 shipped on 2026-11-27 at 10:30.\nTotal: $1299.00\n\
                    Card ending in 4242. Call 555 0100 2000. Copyright 2026 Acme.";
        assert!(
            code_values("Your order has shipped", text).is_empty(),
            "{:?}",
            codes("Your order has shipped", text)
        );
    }

    #[test]
    fn links_are_classified() {
        let html = [
            Link {
                href: "https://acme.test/verify?t=abc".into(),
                text: "Verify email".into(),
            },
            Link {
                href: "https://acme.test/l/8f2".into(),
                text: "Reset your password".into(),
            },
            Link {
                href: "https://acme.test/login?token=zz".into(),
                text: "Sign in".into(),
            },
            Link {
                href: "https://acme.test/u/1".into(),
                text: "Unsubscribe".into(),
            },
            Link {
                href: "https://acme.test/blog".into(),
                text: "Read more".into(),
            },
            Link {
                href: "mailto:x@acme.test".into(),
                text: "Mail us".into(),
            },
        ];
        let headers = [Header {
            name: "List-Unsubscribe".into(),
            value: "<https://acme.test/unsub/2>, <mailto:u@acme.test>".into(),
        }];
        let got: Vec<(String, String)> =
            links("Confirm here: https://acme.test/c/9.", &html, &headers)
                .into_iter()
                .map(|l| (l.url, l.kind))
                .collect();
        let want = [
            ("https://acme.test/verify?t=abc", "verify"),
            ("https://acme.test/l/8f2", "reset"),
            ("https://acme.test/login?token=zz", "magic_login"),
            ("https://acme.test/u/1", "unsubscribe"),
            ("https://acme.test/blog", "other"),
            ("https://acme.test/c/9", "verify"),
            ("https://acme.test/unsub/2", "unsubscribe"),
        ];
        assert_eq!(got, want.map(|(u, k)| (u.to_owned(), k.to_owned())));
    }
}
