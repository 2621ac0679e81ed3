//! Verity's Postgres, read only (SPEC §13). Every statement this system runs against
//! Verity's schema is in this module, so a change on Verity's side is one edit here and
//! in the test fixture (`infra/verity/schema.sql`). Each figure is set-based: one
//! statement per broadcast, whatever its number of recipients.
use std::time::Duration;

use deadpool_postgres::Pool;

use super::db::{self, DbConfigError, DbError, TlsSettings};
use crate::domain::broadcast::{BroadcastInfo, Channel, Counts};

/// Verity's database is someone else's: few connections, short statements.
const POOL_SIZE: usize = 2;
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// An appointment re-computes at most this many of the contact's broadcasts.
const MAX_BROADCASTS_PER_CONTACT: i64 = 100;

#[derive(Clone)]
pub struct VerityDb {
    pool: Pool,
}

/// Recipient statuses that count as delivered, per channel (SPEC §13).
const DELIVERED: &str = "((b.channel = 'email' AND r.status IN ('delivered', 'opened', 'clicked'))
       OR (b.channel <> 'email' AND r.status = 'sent'))";

impl VerityDb {
    pub fn connect(url: &str, tls: &TlsSettings) -> Result<Self, DbConfigError> {
        Ok(VerityDb {
            pool: db::read_only_pool(url, POOL_SIZE, tls, STATEMENT_TIMEOUT)?,
        })
    }

    /// The broadcast and its counts in one statement; `None` when Verity has no such
    /// broadcast.
    pub async fn analytics(
        &self,
        broadcast_id: &str,
    ) -> Result<Option<(BroadcastInfo, Counts)>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "WITH b AS (SELECT id, subject, channel, executed_at FROM broadcast WHERE id = $1),
             r AS (SELECT rr.contact_id, rr.status FROM broadcast_recipient rr WHERE rr.broadcast_id = $1),
             delivered AS (SELECT DISTINCT r.contact_id FROM r, b WHERE {DELIVERED}),
             first_send AS (
                SELECT m.participant_id, min(m.created_at) AS at FROM chat_message m
                WHERE m.broadcast_id = $1 AND m.direction = 'sent'
                GROUP BY m.participant_id),
             responders AS (
                SELECT DISTINCT p.contact_id FROM first_send f
                JOIN chat_participant p ON p.id = f.participant_id
                WHERE p.contact_id IN (SELECT contact_id FROM r)
                  AND EXISTS (SELECT 1 FROM chat_message m
                      WHERE m.participant_id = f.participant_id AND m.direction = 'received'
                        AND m.created_at > f.at AND m.created_at <= f.at + interval '7 days'))
             SELECT b.id, b.subject, b.channel,
                to_char(b.executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                (SELECT count(*) FROM r),
                (SELECT count(*) FROM r WHERE {DELIVERED}),
                (SELECT count(*) FROM r WHERE r.status = 'failed'),
                (SELECT count(*) FROM r WHERE r.status = 'bounced'),
                (SELECT count(*) FROM r WHERE r.status = 'pending'),
                CASE WHEN b.channel = 'email' THEN 0 ELSE (SELECT count(*) FROM responders) END,
                (SELECT count(*) FROM leads l
                 WHERE l.contact_id IN (SELECT contact_id FROM delivered)
                   AND l.ghl_appointment_id IS NOT NULL AND b.executed_at IS NOT NULL
                   AND COALESCE(l.last_activity_at, l.created_at) >= b.executed_at)
             FROM b"
        );
        let Some(row) = client.query_opt(&sql, &[&broadcast_id]).await? else {
            return Ok(None);
        };
        let channel: String = row.get(2);
        let info = BroadcastInfo {
            id: row.get(0),
            subject: row.get(1),
            channel: Channel::parse(&channel),
            executed_at: row.get(3),
        };
        let counts = Counts {
            recipients: row.get(4),
            delivered: row.get(5),
            failed: row.get(6),
            bounced: row.get(7),
            pending: row.get(8),
            responses: row.get(9),
            appointments: row.get(10),
        };
        Ok(Some((info, counts)))
    }

    /// The broadcasts a contact (found by exact E.164 phone or e-mail) received.
    pub async fn broadcasts_of_contact(
        &self,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<Vec<String>, DbError> {
        if phone.is_none() && email.is_none() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT r.broadcast_id FROM contacts c
                 JOIN broadcast_recipient r ON r.contact_id = c.id
                 WHERE (c.phone_e164 = $1 OR lower(c.email) = lower($2))
                   AND r.status IN ('sent', 'delivered', 'opened', 'clicked')
                 ORDER BY r.broadcast_id LIMIT $3",
                &[&phone, &email, &MAX_BROADCASTS_PER_CONTACT],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
