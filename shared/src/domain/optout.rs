//! SMS opt-out keywords (SPEC §7; FCC 47 CFR 64.1200(a)(10) and carrier practice).
//!
//! A message is a keyword request only when the keyword is the *whole* message, after
//! normalisation: surrounding whitespace, punctuation and emoji dropped, case folded,
//! inner whitespace collapsed. "Stop." and "🛑 STOP 🛑" are opt-outs; "don't stop",
//! "STOP - John", "the end of the week" and "Stop by tomorrow" are messages.
//!
//! Opt-in keywords (START, UNSTOP, YES) re-subscribe a number only when it is opted out:
//! a "yes" answering a question is not an opt-in.
//!
//! Beyond the keywords, consent may be revoked "by any reasonable means" (FCC 47 CFR
//! 64.1200(a)(10), the 2024 order): [`detect`] reads a message as a reasonable person
//! would — "stop texting me", "take me off your list", "no más mensajes" are opt-outs;
//! "don't stop", "I'll stop by", "cancel my 3pm" are not; a message that holds an
//! opt-out word and is neither is for a person to decide (`Review`). Pure: no I/O.

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
    use unicode_normalization::UnicodeNormalization;
    // NFKC first: full-width and styled letters (ＳＴＯＰ, 𝐒𝐓𝐎𝐏) are the letters.
    let folded: String = message.nfkc().collect();
    let trimmed = folded.trim_matches(|c: char| !c.is_alphanumeric());
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

/// What a request asks of the registry (`optout_events.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    OptOut,
    OptIn,
    Help,
    /// May be a revocation: an operator decides.
    Review,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::OptOut => "opt_out",
            RequestKind::OptIn => "opt_in",
            RequestKind::Help => "help",
            RequestKind::Review => "review",
        }
    }
}

/// The request a text is, if any, and the keyword or phrase that says so.
pub fn request_of(text: &str) -> Option<(RequestKind, &'static str)> {
    Some(match detect(text) {
        Detection::OptOut(k) => (RequestKind::OptOut, k),
        Detection::OptIn(k) => (RequestKind::OptIn, k),
        Detection::Help(k) => (RequestKind::Help, k),
        Detection::Review(k) => (RequestKind::Review, k),
        Detection::None => return None,
    })
}

/// The opt-out job's event type (both inboxes).
pub const JOB_EVENT: &str = "optout.job";

/// The job row of recorded request `request_id` (its reply and GHL mirror): one per
/// request, in a message group of its own (its key names the job, not the person).
pub fn job(
    request_id: uuid::Uuid,
    reply_from: Option<&str>,
) -> (super::Classified, super::dedupe::DedupeKey, String) {
    let classified = super::Classified {
        event_type: JOB_EVENT.into(),
        entity_type: super::EntityType::Optout,
        entity_id: Some(request_id.to_string()),
        person: super::PersonRef::default(),
        location_id: None,
        occurred_at: None,
    };
    let payload = serde_json::json!({"type": JOB_EVENT, "optoutEventId": request_id, "replyFrom": reply_from});
    (
        classified,
        super::dedupe::DedupeKey::Id(format!("optout-job:{request_id}")),
        payload.to_string(),
    )
}

/// How a message reads, as far as consent goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// A revocation: the keyword or phrase that says so.
    OptOut(&'static str),
    OptIn(&'static str),
    Help(&'static str),
    /// Holds an opt-out word but is neither clearly a revocation nor clearly something
    /// else: recorded for an operator to decide, no opt-out yet.
    Review(&'static str),
    None,
}

/// Phrasings a reasonable person reads as "stop texting me" (lower case, after
/// [`plain`]); matched as whole words anywhere in the message.
const REVOCATIONS: &[&str] = &[
    "stop texting",
    "stop txting",
    "stop messaging",
    "stop sending",
    "stop contacting",
    "stop calling and texting",
    "stop the texts",
    "stop these texts",
    "stop with the texts",
    "stop all texts",
    "stop all messages",
    "quit texting",
    "quit messaging",
    "please stop",
    "stop please",
    "pls stop",
    "stop it",
    "stop now",
    "take me off",
    "remove me",
    "remove my number",
    "delete my number",
    "lose my number",
    "unsubscribe me",
    "opt me out",
    "i want to opt out",
    "i opt out",
    "no more texts",
    "no more text",
    "no more messages",
    "dont text me",
    "do not text me",
    "don t text me",
    "never text me",
    "dont message me",
    "do not message me",
    "do not contact me",
    "dont contact me",
    "leave me alone",
    "not interested stop",
    "no mas",
    "ya no me escriban",
    "no me escriban",
    "no me manden",
    "deja de enviarme",
    "dejen de enviarme",
    "dejen de escribirme",
    "borra mi numero",
    "eliminar mi numero",
    "darme de baja",
];

/// Spanish words that revoke on their own, in a short message ("Alto", "baja por
/// favor"), not inside a sentence ("el precio es alto").
const SHORT_REVOCATIONS: &[&str] = &["alto", "baja", "basta"];

/// Words that, on their own, may mean "stop" (the FCC's list, lower case).
const OPT_OUT_WORDS: &[&str] = &[
    "stop",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "revoke",
    "optout",
    "opt out",
    "opt-out",
];

/// The other senses of those words: negations, places, appointments, time.
const OTHER_SENSES: &[&str] = &[
    "dont stop",
    "don t stop",
    "do not stop",
    "never stop",
    "cant stop",
    "can t stop",
    "cannot stop",
    "wont stop",
    "won t stop",
    "stop by",
    "stop in",
    "stop over",
    "stop at",
    "stop off",
    "stop on by",
    "bus stop",
    "pit stop",
    "one stop",
    "non stop",
    "nonstop",
    "the end of",
    "end of the",
    "end of day",
    "at the end",
    "weekend",
    "quit my job",
    "quit smoking",
];

/// "cancel my 3pm", "cancel the appointment", "cancel tomorrow": cancelling something
/// other than the texts.
fn cancels_something_else(text: &str) -> bool {
    const TEXTS: &[&str] = &[
        "texts",
        "text",
        "messages",
        "message",
        "sms",
        "subscription",
        "number",
    ];
    let words: Vec<&str> = text.split(' ').collect();
    words.windows(2).any(|w| {
        w[0] == "cancel"
            && !TEXTS.contains(&w[1])
            && ([
                "my", "the", "our", "this", "that", "your", "tomorrow", "today", "tonight", "next",
            ]
            .contains(&w[1])
                || w[1].starts_with(|c: char| c.is_ascii_digit()))
            && !words
                .iter()
                .skip_while(|x| **x != "cancel")
                .take(4)
                .any(|x| TEXTS.contains(x))
    })
}

/// Lower case, NFKC, apostrophes and punctuation as spaces, accents dropped from the
/// Spanish vowels, whitespace collapsed: the form phrases are matched in.
pub fn plain(message: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = message
        .nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' => 'a',
            'é' => 'e',
            'í' => 'i',
            'ó' => 'o',
            'ú' | 'ü' => 'u',
            'ñ' => 'n',
            '\u{2019}' | '\'' | '`' => ' ',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    // "don't" → "don t" and "dont" both appear in the tables.
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `phrase` occurs in `text` as whole words.
fn has_phrase(text: &str, phrase: &str) -> bool {
    let padded = format!(" {text} ");
    padded.contains(&format!(" {phrase} "))
}

/// How a message reads (see the module's text). Keywords first; then the other senses
/// of the opt-out words; then revocation phrasings; then a message that starts with an
/// opt-out word and says little more ("STOP - John", "stop thanks"); then any opt-out
/// word at all, which a person reviews.
pub fn detect(message: &str) -> Detection {
    if let Some(k) = keyword(message) {
        return match k {
            Keyword::OptOut(k) => Detection::OptOut(k),
            Keyword::OptIn(k) => Detection::OptIn(k),
            Keyword::Help(k) => Detection::Help(k),
        };
    }
    let text = plain(message);
    let negated =
        OTHER_SENSES.iter().any(|p| has_phrase(&text, p)) || cancels_something_else(&text);
    if let Some(p) = REVOCATIONS.iter().find(|p| has_phrase(&text, p)) {
        // "don't stop texting me" is a negation, "please stop, I'll stop by" is not.
        let negation = ["dont stop", "don t stop", "do not stop", "never stop"]
            .iter()
            .any(|n| has_phrase(&text, n));
        if !negation {
            return Detection::OptOut(p);
        }
    }
    if negated {
        return Detection::None;
    }
    let words: Vec<&str> = text.split(' ').collect();
    if words.len() <= 3 {
        if let Some(w) = SHORT_REVOCATIONS.iter().find(|w| words.contains(w)) {
            return Detection::OptOut(w);
        }
    }
    let word = OPT_OUT_WORDS.iter().find(|w| has_phrase(&text, w));
    if let Some(w) = word {
        let leads =
            words.first().is_some_and(|first| first == w) || text.starts_with(&format!("{w} "));
        // A question is not a request ("revoke what?").
        let question = message.contains('?');
        if leads && !question && words.len() <= 4 && *w != "end" && *w != "cancel" {
            return Detection::OptOut(w);
        }
        return Detection::Review(w);
    }
    Detection::None
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
