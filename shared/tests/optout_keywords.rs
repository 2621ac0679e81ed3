//! What each inbound message body does to a number (SPEC §7): a table of message
//! bodies, every keyword in several casings and with punctuation, whitespace and emoji
//! around it, and messages that contain a keyword without being a request.
use df_shared::domain::optout::{action, Action, Status};

use Action::*;
use Status::*;

#[test]
fn message_bodies_and_their_actions() {
    // (body, the number's status before, expected action)
    let table: &[(&str, Status, Action)] = &[
        // Opt-out keywords, whole message, any casing and decoration.
        ("STOP", Unknown, OptOut("STOP")),
        ("stop", OptedIn, OptOut("STOP")),
        ("Stop.", Unknown, OptOut("STOP")),
        ("  sToP  ", Unknown, OptOut("STOP")),
        ("STOP!!!", Unknown, OptOut("STOP")),
        ("🛑 STOP 🛑", Unknown, OptOut("STOP")),
        ("\"stop\"", Unknown, OptOut("STOP")),
        ("STOP\n", Unknown, OptOut("STOP")),
        ("stopall", Unknown, OptOut("STOPALL")),
        ("Unsubscribe", Unknown, OptOut("UNSUBSCRIBE")),
        ("UNSUBSCRIBE.", Unknown, OptOut("UNSUBSCRIBE")),
        ("cancel", Unknown, OptOut("CANCEL")),
        ("Cancel!", OptedOut, OptOut("CANCEL")),
        ("end", Unknown, OptOut("END")),
        ("END 🙏", Unknown, OptOut("END")),
        ("quit", Unknown, OptOut("QUIT")),
        ("Quit.", Unknown, OptOut("QUIT")),
        ("revoke", Unknown, OptOut("REVOKE")),
        ("opt out", Unknown, OptOut("OPT OUT")),
        ("Opt   Out", Unknown, OptOut("OPT OUT")),
        ("opt-out", Unknown, OptOut("OPT-OUT")),
        ("OPTOUT", Unknown, OptOut("OPTOUT")),
        ("optout!", Unknown, OptOut("OPTOUT")),
        // Messages that contain a keyword but are not a request.
        ("don't stop", Unknown, None),
        ("Please don't stop calling me", Unknown, None),
        ("the end of the week", Unknown, None),
        ("cancel my 3pm appointment?", Unknown, None),
        ("Stop by tomorrow", Unknown, None),
        ("STOP - John", Unknown, None),
        ("stop stop", Unknown, None),
        ("I want to quit my job", Unknown, None),
        ("Can I unsubscribe later?", Unknown, None),
        ("stopped", Unknown, None),
        ("STOPS", Unknown, None),
        ("Is this still available?", Unknown, None),
        ("", Unknown, None),
        ("...", Unknown, None),
        // Opt-in keywords only re-subscribe a number that is opted out.
        ("START", OptedOut, OptIn("START")),
        ("start.", OptedOut, OptIn("START")),
        ("Unstop", OptedOut, OptIn("UNSTOP")),
        ("yes", OptedOut, OptIn("YES")),
        ("YES!", OptedOut, OptIn("YES")),
        ("yes", Unknown, None),
        ("Yes", OptedIn, None),
        ("start", Unknown, None),
        ("yes please call me", OptedOut, None),
        ("start again tomorrow", OptedOut, None),
        // Help.
        ("HELP", Unknown, Help("HELP")),
        ("help?", OptedIn, Help("HELP")),
        ("Info", Unknown, Help("INFO")),
        ("info.", OptedOut, Help("INFO")),
        ("I need help with my account", Unknown, None),
        // Other scripts: no keyword.
        ("ストップ", Unknown, None),
        ("停止", Unknown, None),
        ("СТОП", Unknown, None),
        ("توقف", Unknown, None),
        ("alto", Unknown, None),
    ];
    assert!(table.len() >= 40, "{} cases", table.len());
    let wrong: Vec<String> = table
        .iter()
        .filter(|(body, status, want)| action(body, *status) != *want)
        .map(|(body, status, want)| {
            format!(
                "{body:?} ({status:?}): expected {want:?}, got {:?}",
                action(body, *status)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The FCC's "any reasonable means" (47 CFR 64.1200(a)(10), in force since April 2025):
/// what a reasonable person reads as "stop texting me" is an opt-out, negations and
/// other senses of the words are not, and what is neither goes to a person.
#[test]
fn messages_as_a_reasonable_person_reads_them() {
    use df_shared::domain::optout::{detect, Detection};
    let opt_out = |m: &str| matches!(detect(m), Detection::OptOut(_));
    let review = |m: &str| matches!(detect(m), Detection::Review(_));
    let nothing = |m: &str| detect(m) == Detection::None;
    let revocations = [
        "STOP",
        "Stop.",
        "ＳＴＯＰ",
        "stop texting me",
        "Stop texting me!",
        "please stop",
        "Please stop texting me",
        "stop please",
        "STOP PLEASE!!!",
        "Stop sending me messages",
        "stop messaging me",
        "stop contacting me",
        "Please stop contacting me.",
        "take me off your list",
        "Take me off this list please",
        "remove me",
        "Remove me from your list",
        "remove my number",
        "delete my number please",
        "lose my number",
        "unsubscribe me",
        "opt me out",
        "I want to opt out",
        "no more texts",
        "No more messages please",
        "don't text me",
        "Do not text me again",
        "dont text me anymore",
        "Never text me again",
        "leave me alone",
        "STOP - John",
        "stop thanks",
        "Unsubscribe please",
        "quit texting me",
        "no más mensajes",
        "No mas",
        "Alto",
        "baja por favor",
        "ya no me escriban",
        "Dejen de enviarme mensajes",
        "wrong person, stop texting me",
        "I'm not interested, please stop",
        "stop stop",
    ];
    for m in revocations {
        assert!(opt_out(m), "{m:?} is a revocation: {:?}", detect(m));
    }
    let not_revocations = [
        "don't stop",
        "Please don't stop calling me",
        "I can't stop thinking about the house",
        "I'll stop by tomorrow",
        "Stop by the office at 5",
        "Can we stop at the bank first?",
        "cancel my 3pm appointment?",
        "Can you cancel my appointment tomorrow",
        "See you at the end of the week",
        "by end of day",
        "I want to quit my job",
        "Is this still available?",
        "Yes I'm interested",
        "el precio es muy alto",
        "What time works this weekend?",
        "",
    ];
    for m in not_revocations {
        assert!(nothing(m), "{m:?} is not a revocation: {:?}", detect(m));
    }
    let ambiguous = [
        "Can I unsubscribe later?",
        "how do I cancel?",
        "will this ever end",
        "I might quit",
        "revoke what?",
        "Should I stop the payment or not",
    ];
    for m in ambiguous {
        assert!(review(m), "{m:?} is for a person: {:?}", detect(m));
    }
    assert_eq!(detect("START"), Detection::OptIn("START"));
    assert_eq!(detect("help"), Detection::Help("HELP"));
    let total = revocations.len() + not_revocations.len() + ambiguous.len() + 2;
    assert!(total >= 60, "{total} phrases");
}
