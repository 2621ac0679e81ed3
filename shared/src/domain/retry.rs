//! The retry budget of a stored event (SPEC §5). The row owns it, not the queue: a row
//! counts its attempts (claims), records when it is next due, and ends `failed` when the
//! budget is spent or the error cannot be fixed by retrying. SQS receives are not
//! attempts: a record blocked behind a failure, or one whose claim failed because the
//! database was down, never spends the budget.
use std::time::Duration;

/// Attempts (claims) before a retryable failure becomes final.
pub const MAX_ATTEMPTS: i32 = 10;
/// Ceiling of the exponential back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// A rejected provider credential (rotated or expired token) needs a person: retry, but
/// slowly, so the budget covers hours rather than minutes while the alert is seen.
pub const CREDENTIAL_RETRY_DELAY: Duration = Duration::from_secs(30 * 60);

/// The delays of one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First retry delay; doubles per attempt.
    pub base: Duration,
    /// Delay after a rejected credential.
    pub credential_delay: Duration,
}

/// What kind of failure a sync ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// May succeed later (network, 408, 5xx, lost database connection, waiting for
    /// a related event); `at_least` is the provider's own minimum wait (GHL's interval).
    Retryable { at_least: Option<Duration> },
    /// The provider refused our credential (401/403) and no pause holds the work:
    /// retried after a long delay, never counted (a rotated token is not the event's
    /// fault).
    Credential,
    /// The provider is paused (it refused our credential): the work waits for the
    /// pause to end, in order, spending nothing.
    Paused { provider: &'static str },
    /// A rate limit refused the work (our own budget, or the provider's 429): nothing
    /// was applied and the event is not at fault. Retried after `after`, and the
    /// attempt is given back.
    Throttled { after: std::time::Duration },
    /// Our own database failed mid-attempt (a connection lost, the server restarting):
    /// infrastructure, not the event. Retried after `after`, the attempt given back —
    /// as a claim refused by an outage spends none.
    Unavailable { after: std::time::Duration },
    /// Retrying cannot help (validation, provider 4xx, a bug): final at once.
    Final,
}

/// What becomes of the row after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Status `error`, due again after `delay`.
    RetryAfter(Duration),
    /// Due again after `delay`, and this attempt does not count.
    RetryUncounted(Duration),
    /// Held by the pause of `provider`: this attempt does not count, and the row waits
    /// (its message acknowledged) until the pause ends.
    Hold { provider: &'static str },
    /// Status `failed`: the budget is spent or retrying cannot help.
    GiveUp { exhausted: bool },
}

/// `base · 2^(attempt-1)`, capped.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let exponent = (attempt.clamp(1, 16) - 1) as u32;
    base.saturating_mul(1u32 << exponent).min(MAX_BACKOFF)
}

impl RetryPolicy {
    /// The verdict for attempt `attempt` (1-based) that failed with `class`.
    pub fn verdict(&self, class: FailureClass, attempt: i32) -> Verdict {
        match class {
            FailureClass::Final => Verdict::GiveUp { exhausted: false },
            FailureClass::Throttled { after } | FailureClass::Unavailable { after } => {
                Verdict::RetryUncounted(after)
            }
            FailureClass::Paused { provider } => Verdict::Hold { provider },
            FailureClass::Credential => Verdict::RetryUncounted(self.credential_delay),
            _ if attempt >= MAX_ATTEMPTS => Verdict::GiveUp { exhausted: true },
            FailureClass::Retryable { at_least } => {
                Verdict::RetryAfter(backoff(self.base, attempt).max(at_least.unwrap_or_default()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 3), Duration::from_secs(120));
        assert_eq!(backoff(base, 9), MAX_BACKOFF);
        assert_eq!(backoff(base, 0), Duration::from_secs(30));
    }

    #[test]
    fn the_budget_ends_in_a_final_failure() {
        let policy = RetryPolicy {
            base: Duration::from_secs(30),
            credential_delay: CREDENTIAL_RETRY_DELAY,
        };
        let retryable = FailureClass::Retryable { at_least: None };
        assert_eq!(
            policy.verdict(retryable, 1),
            Verdict::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(
            policy.verdict(retryable, MAX_ATTEMPTS),
            Verdict::GiveUp { exhausted: true }
        );
        assert_eq!(
            policy.verdict(FailureClass::Final, 1),
            Verdict::GiveUp { exhausted: false }
        );
        assert_eq!(
            policy.verdict(FailureClass::Credential, MAX_ATTEMPTS),
            Verdict::RetryUncounted(CREDENTIAL_RETRY_DELAY),
            "a rejected credential never spends the budget"
        );
        assert_eq!(
            policy.verdict(FailureClass::Paused { provider: "ghl" }, MAX_ATTEMPTS),
            Verdict::Hold { provider: "ghl" }
        );
        let rate_limited = FailureClass::Retryable {
            at_least: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            policy.verdict(rate_limited, 1),
            Verdict::RetryAfter(Duration::from_secs(60))
        );
        let throttled = FailureClass::Throttled {
            after: Duration::from_secs(5),
        };
        assert_eq!(
            policy.verdict(throttled, MAX_ATTEMPTS),
            Verdict::RetryUncounted(Duration::from_secs(5)),
            "our own throttling never spends the budget"
        );
    }
}
