//! A person's chain of unfinished events and which of them the relay sends now (SPEC
//! §5), pure. A chain is the person's unfinished rows of one inbox, oldest first. A row
//! with a live message (or in progress) keeps its place in the FIFO group; a row without
//! one is sent — in order, so it lands behind every older live message — unless a pause
//! holds it (then it, and everything after it, waits) or it yields, waiting aside for a
//! related event until it is due.
use uuid::Uuid;

/// One unfinished row of a chain, as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: Uuid,
    pub person_key: String,
    /// Has a queue message believed alive, or an attempt holds it.
    pub live: bool,
    /// Held by a provider pause until it resumes.
    pub held: bool,
    /// Stepped aside, waiting for a related event (never blocks the rows after it).
    pub yields: bool,
    /// Due (or nearly): a yielding row is sent only then.
    pub due: bool,
}

/// The rows to send now, chain by chain, each chain oldest first. `links` is sorted by
/// person, then age.
pub fn to_send(links: &[Link]) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut stopped: Option<&str> = None;
    for link in links {
        if stopped == Some(link.person_key.as_str()) {
            continue;
        }
        if link.live {
            continue;
        }
        if link.held {
            stopped = Some(&link.person_key);
            continue;
        }
        if link.yields && !link.due {
            continue;
        }
        out.push(link.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u128, person: &str, live: bool, held: bool, yields: bool, due: bool) -> Link {
        Link {
            id: Uuid::from_u128(n),
            person_key: person.into(),
            live,
            held,
            yields,
            due,
        }
    }

    #[test]
    fn unqueued_rows_go_in_order_behind_live_ones() {
        let chain = [
            link(1, "a", true, false, false, true),
            link(2, "a", false, false, false, true),
            link(3, "a", false, false, false, false),
        ];
        assert_eq!(to_send(&chain), [Uuid::from_u128(2), Uuid::from_u128(3)]);
    }

    #[test]
    fn a_held_row_holds_its_chain_and_only_its_chain() {
        let chains = [
            link(1, "a", false, true, false, false),
            link(2, "a", false, false, false, true),
            link(3, "b", false, false, false, true),
        ];
        assert_eq!(to_send(&chains), [Uuid::from_u128(3)]);
    }

    #[test]
    fn a_yielding_row_waits_aside_until_due() {
        let chain = [
            link(1, "a", false, false, true, false),
            link(2, "a", false, false, false, true),
            link(3, "b", false, false, true, true),
        ];
        assert_eq!(to_send(&chain), [Uuid::from_u128(2), Uuid::from_u128(3)]);
    }
}
