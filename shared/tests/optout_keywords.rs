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
