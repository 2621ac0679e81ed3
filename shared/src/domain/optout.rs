//! SMS opt-out keywords (SPEC §7; FCC 47 CFR 64.1200(a)(10) and carrier practice).
//!
//! A message is a keyword request only when the keyword is the *whole* message, after
//! normalisation: surrounding whitespace, punctuation and emoji dropped, case folded,
//! inner whitespace collapsed. "Stop." and "🛑 STOP 🛑" are opt-outs; "don't stop",
//! "STOP - John", "the end of the week" and "Stop by tomorrow" are messages.
//!
//! Opt-in keywords (START, UNSTOP, YES) re-subscribe a number only when it is opted out:
//! a "yes" answering a question is not an opt-in. Pure: no I/O.

/// What a keyword message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut(&'static str),
    OptIn(&'static str),
    Help(&'static str),
}

impl Keyword {
    pub fn word(self) -> &'static str {
        match self {
            Keyword::OptOut(w) | Keyword::OptIn(w) | Keyword::Help(w) => w,
        }
    }
}

/// Revocations of consent "per se" (FCC) and carrier defaults, as normalised text.
pub const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPT OUT",
    "OPT-OUT",
    "OPTOUT",
];
pub const OPT_IN: &[&str] = &["START", "UNSTOP", "YES"];
pub const HELP: &[&str] = &["HELP", "INFO"];

/// The message reduced to what a keyword comparison needs: no surrounding characters
/// other than letters and digits, inner whitespace collapsed to one space, upper case.
pub fn normalise(message: &str) -> String {
    let trimmed = message.trim_matches(|c: char| !c.is_alphanumeric());
    trimmed
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// The keyword a whole message is, if any.
pub fn keyword(message: &str) -> Option<Keyword> {
    let text = normalise(message);
    let find = |list: &'static [&'static str]| list.iter().copied().find(|k| *k == text);
    find(OPT_OUT)
        .map(Keyword::OptOut)
        .or_else(|| find(OPT_IN).map(Keyword::OptIn))
        .or_else(|| find(HELP).map(Keyword::Help))
}

/// A number's opt-out state as the registry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    OptedOut,
    OptedIn,
    /// Never seen: texting is allowed (consent is the sender's business elsewhere).
    Unknown,
}

/// What an inbound message does to a number in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    OptOut(&'static str),
    OptIn(&'static str),
    Help(&'static str),
    /// An ordinary message (including an opt-in word from a number not opted out).
    None,
}

pub fn action(message: &str, status: Status) -> Action {
    match keyword(message) {
        Some(Keyword::OptOut(k)) => Action::OptOut(k),
        Some(Keyword::OptIn(k)) if status == Status::OptedOut => Action::OptIn(k),
        Some(Keyword::Help(k)) => Action::Help(k),
        Some(Keyword::OptIn(_)) | None => Action::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_keeps_only_the_words() {
        assert_eq!(normalise("  Stop.  "), "STOP");
        assert_eq!(normalise("🛑 stop 🛑"), "STOP");
        assert_eq!(normalise("opt   out!!"), "OPT OUT");
        assert_eq!(normalise("\"Opt-Out\""), "OPT-OUT");
        assert_eq!(normalise("STOP - John"), "STOP - JOHN");
        assert_eq!(normalise("..."), "");
    }
}
