//! Why a recipient failed, from its enhanced status code (RFC 3463, with the IANA registry's
//! later codes) and its diagnostic text, in Sisimai's taxonomy; and whether the failure is
//! "hard": the address itself is permanently bad (user unknown, host unknown, has moved, accepts
//! no mail). A refusal for policy, content, reputation, a full mailbox or a rate is soft even
//! with a 5xx code: it says nothing about the address, so suppression follows `hard` only.

/// The taxonomy (`as_str` is the JSON name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UserUnknown,
    MailboxFull,
    HostUnknown,
    Filtered,
    Blocked,
    SpamDetected,
    PolicyViolation,
    AuthFailure,
    SecurityError,
    Expired,
    Suspend,
    HasMoved,
    MesgTooBig,
    ExceedLimit,
    TooManyConn,
    VirusDetected,
    Rejected,
    NoRelaying,
    SystemError,
    NetworkError,
    NotAccept,
    ContentError,
    Speeding,
    BadReputation,
    RequirePtr,
    NotCompliantRfc,
    SyntaxError,
    OnHold,
    MailerError,
    Undefined,
    Vacation,
    Feedback,
    Delivered,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            UserUnknown => "userunknown",
            MailboxFull => "mailboxfull",
            HostUnknown => "hostunknown",
            Filtered => "filtered",
            Blocked => "blocked",
            SpamDetected => "spamdetected",
            PolicyViolation => "policyviolation",
            AuthFailure => "authfailure",
            SecurityError => "securityerror",
            Expired => "expired",
            Suspend => "suspend",
            HasMoved => "hasmoved",
            MesgTooBig => "mesgtoobig",
            ExceedLimit => "exceedlimit",
            TooManyConn => "toomanyconn",
            VirusDetected => "virusdetected",
            Rejected => "rejected",
            NoRelaying => "norelaying",
            SystemError => "systemerror",
            NetworkError => "networkerror",
            NotAccept => "notaccept",
            ContentError => "contenterror",
            Speeding => "speeding",
            BadReputation => "badreputation",
            RequirePtr => "requireptr",
            NotCompliantRfc => "notcompliantrfc",
            SyntaxError => "syntaxerror",
            OnHold => "onhold",
            MailerError => "mailererror",
            Undefined => "undefined",
            Vacation => "vacation",
            Feedback => "feedback",
            Delivered => "delivered",
        }
    }

    /// The address itself is bad: suppress it.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved | Reason::NotAccept
        )
    }
}

/// Phrases of diagnostic texts, most specific first; the first that appears decides. Lower-case.
const PHRASES: &[(&str, Reason)] = &[
    // The mailbox does not exist.
    ("user unknown", Reason::UserUnknown),
    ("unknown user", Reason::UserUnknown),
    ("no such user", Reason::UserUnknown),
    ("no such mailbox", Reason::UserUnknown),
    ("no such recipient", Reason::UserUnknown),
    ("no such address", Reason::UserUnknown),
    ("no such person", Reason::UserUnknown),
    ("unknown recipient", Reason::UserUnknown),
    ("unknown local part", Reason::UserUnknown),
    ("unknown or illegal", Reason::UserUnknown),
    ("recipient unknown", Reason::UserUnknown),
    ("recipient not found", Reason::UserUnknown),
    ("recipient address rejected: user", Reason::UserUnknown),
    ("address unknown", Reason::UserUnknown),
    ("addressee unknown", Reason::UserUnknown),
    ("user not found", Reason::UserUnknown),
    ("mailbox not found", Reason::UserUnknown),
    ("mailbox unavailable", Reason::UserUnknown),
    ("mailbox does not exist", Reason::UserUnknown),
    ("does not exist", Reason::UserUnknown),
    ("doesn't exist", Reason::UserUnknown),
    ("not a valid mailbox", Reason::UserUnknown),
    ("invalid recipient", Reason::UserUnknown),
    ("invalid mailbox", Reason::UserUnknown),
    ("invalid address", Reason::UserUnknown),
    ("not our customer", Reason::UserUnknown),
    ("no mailbox here", Reason::UserUnknown),
    ("no longer available", Reason::UserUnknown),
    ("account does not exist", Reason::UserUnknown),
    ("is not a known user", Reason::UserUnknown),
    ("unrouteable address", Reason::UserUnknown),
    ("not listed in", Reason::UserUnknown),
    ("no account by that name", Reason::UserUnknown),
    ("bad destination mailbox", Reason::UserUnknown),
    ("unknown address", Reason::UserUnknown),
    // Moved, suspended, disabled.
    ("has moved", Reason::HasMoved),
    ("no longer with", Reason::HasMoved),
    ("account has been disabled", Reason::Suspend),
    ("account is disabled", Reason::Suspend),
    ("account disabled", Reason::Suspend),
    ("mailbox disabled", Reason::Suspend),
    ("account has been suspended", Reason::Suspend),
    ("account suspended", Reason::Suspend),
    ("inactive", Reason::Suspend),
    ("deactivated", Reason::Suspend),
    // The domain.
    ("host unknown", Reason::HostUnknown),
    ("unknown host", Reason::HostUnknown),
    ("domain not found", Reason::HostUnknown),
    ("no such domain", Reason::HostUnknown),
    ("unrouteable mail domain", Reason::HostUnknown),
    ("host not found", Reason::HostUnknown),
    ("name or service not known", Reason::HostUnknown),
    ("nxdomain", Reason::HostUnknown),
    ("domain does not exist", Reason::HostUnknown),
    ("does not accept mail", Reason::NotAccept),
    ("null mx", Reason::NotAccept),
    // Capacity.
    ("mailbox full", Reason::MailboxFull),
    ("mailbox is full", Reason::MailboxFull),
    ("over quota", Reason::MailboxFull),
    ("quota exceeded", Reason::MailboxFull),
    ("exceeded storage", Reason::MailboxFull),
    ("insufficient disk space", Reason::MailboxFull),
    ("mail box full", Reason::MailboxFull),
    ("too large", Reason::MesgTooBig),
    ("message size exceeds", Reason::MesgTooBig),
    ("exceeds size limit", Reason::MesgTooBig),
    ("message exceeds", Reason::MesgTooBig),
    ("too many recipients", Reason::ExceedLimit),
    ("too many connections", Reason::TooManyConn),
    ("rate limit", Reason::Speeding),
    ("too many messages", Reason::Speeding),
    ("try again later", Reason::Speeding),
    // Content and policy.
    ("virus", Reason::VirusDetected),
    ("spam", Reason::SpamDetected),
    ("blacklist", Reason::Blocked),
    ("blocklist", Reason::Blocked),
    ("block list", Reason::Blocked),
    ("listed at", Reason::Blocked),
    ("blocked", Reason::Blocked),
    ("reputation", Reason::BadReputation),
    ("reverse dns", Reason::RequirePtr),
    ("ptr record", Reason::RequirePtr),
    ("dmarc", Reason::AuthFailure),
    ("spf", Reason::AuthFailure),
    ("dkim", Reason::AuthFailure),
    ("tls required", Reason::SecurityError),
    ("starttls", Reason::SecurityError),
    ("relaying denied", Reason::NoRelaying),
    ("relay access denied", Reason::NoRelaying),
    ("relaying not", Reason::NoRelaying),
    ("not permitted to relay", Reason::NoRelaying),
    ("unable to relay", Reason::NoRelaying),
    ("we do not relay", Reason::NoRelaying),
    ("content rejected", Reason::ContentError),
    ("policy", Reason::PolicyViolation),
    ("refused", Reason::Rejected),
    ("rejected", Reason::Rejected),
    ("denied", Reason::Rejected),
    // Time and network.
    ("retry timeout exceeded", Reason::Expired),
    ("retry time", Reason::Expired),
    ("could not be delivered for", Reason::Expired),
    ("message expired", Reason::Expired),
    ("delivery time expired", Reason::Expired),
    ("connection refused", Reason::NetworkError),
    ("connection timed out", Reason::NetworkError),
    ("network is unreachable", Reason::NetworkError),
    ("mail loop", Reason::NetworkError),
    ("too many hops", Reason::NetworkError),
    ("loops back", Reason::NetworkError),
    ("syntax error", Reason::SyntaxError),
    ("system error", Reason::SystemError),
    ("local error", Reason::SystemError),
];

/// The reason a status code alone says (class 4 or 5), when it is specific.
fn by_status(status: &str) -> Option<Reason> {
    let detail = status.split_once('.')?.1;
    Some(match detail {
        "1.1" | "1.0" | "1.3" => Reason::UserUnknown,
        "1.2" => Reason::HostUnknown,
        "1.6" => Reason::HasMoved,
        "1.10" => Reason::NotAccept,
        "2.1" => Reason::Suspend,
        "2.2" => Reason::MailboxFull,
        "2.3" | "3.4" => Reason::MesgTooBig,
        "2.4" | "3.0" | "3.5" => Reason::MailerError,
        "3.1" => Reason::MailboxFull,
        "3.2" => Reason::NotAccept,
        "4.0" | "4.3" => Reason::NetworkError,
        "4.1" | "4.2" => Reason::NetworkError,
        "4.4" => Reason::HostUnknown,
        "4.6" => Reason::NetworkError,
        "4.7" => Reason::Expired,
        "5.0" | "5.1" | "5.2" | "5.4" => Reason::SyntaxError,
        "5.3" => Reason::ExceedLimit,
        "6.0" | "6.1" => Reason::ContentError,
        "7.1" => Reason::Rejected,
        "7.7" => Reason::ContentError,
        "7.23" | "7.24" | "7.25" => Reason::RequirePtr,
        "7.26" | "7.27" => Reason::AuthFailure,
        "7.8" | "7.9" | "7.10" | "7.11" | "7.12" | "7.13" | "7.14" | "7.15" => {
            Reason::SecurityError
        }
        _ => return None,
    })
}

/// The reason and hardness for one recipient. The text wins over a generic code (a 5.7.1 that
/// says "user unknown" is one); a specific code wins over weak text ("rejected").
pub fn classify(status: Option<&str>, diagnostic: &str) -> Reason {
    let text = diagnostic.to_ascii_lowercase();
    let phrase = PHRASES
        .iter()
        .find(|(p, _)| text.contains(p))
        .map(|(_, r)| *r);
    let coded = status.and_then(by_status);
    match (phrase, coded) {
        (Some(Reason::Rejected | Reason::PolicyViolation), Some(c)) => c,
        (Some(p), _) => p,
        (None, Some(c)) => c,
        (None, None) if status.is_some_and(|s| s.starts_with('2')) => Reason::Delivered,
        (None, None) => Reason::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_texts_give_reasons_and_hardness() {
        assert_eq!(classify(Some("5.1.1"), ""), Reason::UserUnknown);
        assert_eq!(
            classify(
                Some("5.7.1"),
                "550 5.7.1 <x@y>: Recipient address rejected: User unknown in local recipient table"
            ),
            Reason::UserUnknown
        );
        assert_eq!(classify(Some("5.2.2"), "mailbox full"), Reason::MailboxFull);
        assert_eq!(
            classify(Some("5.7.1"), "rejected by policy"),
            Reason::Rejected
        );
        assert_eq!(
            classify(Some("5.7.26"), "unauthenticated mail is rejected"),
            Reason::AuthFailure
        );
        assert_eq!(
            classify(None, "Host unknown (Name server: x: host not found)"),
            Reason::HostUnknown
        );
        assert_eq!(classify(Some("4.4.7"), ""), Reason::Expired);
        assert!(Reason::UserUnknown.is_hard() && Reason::HostUnknown.is_hard());
        // A 5xx for policy or a full mailbox is soft: it says nothing about the address.
        assert!(!classify(Some("5.7.1"), "blocked using zen.spamhaus.org").is_hard());
        assert!(!classify(Some("5.2.2"), "").is_hard());
    }
}
