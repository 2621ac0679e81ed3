-- Demo data for scripts/dev: one SMS broadcast to five contacts, sent 2026-11-20 15:00 UTC.
-- Hand-computed figures (README "Broadcast analytics"): recipients 5, delivered 3
-- (status sent), failed 1, pending 1, sent 4; responses 2 (c1 replied after 2 h, c2
-- after 3 days; c3 replied after 9 days: too late); appointments 1 (c1's lead, booked
-- after the send). delivery 75 %, failure 25 %, response 66.67 %, conversion 50 %.
INSERT INTO broadcast VALUES ('bc-demo-0001', 'November open house', 'sms', '2026-11-20T15:00:00Z', 'user-1')
    ON CONFLICT DO NOTHING;
INSERT INTO contacts VALUES
    ('c1', '+12025550101', 'c1@example.com'), ('c2', '+12025550102', NULL),
    ('c3', '+12025550103', NULL), ('c4', '+12025550104', NULL), ('c5', '+12025550105', NULL)
    ON CONFLICT DO NOTHING;
INSERT INTO broadcast_recipient VALUES
    ('r1', 'bc-demo-0001', 'c1', 'sent'), ('r2', 'bc-demo-0001', 'c2', 'sent'),
    ('r3', 'bc-demo-0001', 'c3', 'sent'), ('r4', 'bc-demo-0001', 'c4', 'failed'),
    ('r5', 'bc-demo-0001', 'c5', 'pending')
    ON CONFLICT DO NOTHING;
INSERT INTO chat VALUES ('chat1', 'user-1'), ('chat2', 'user-1'), ('chat3', 'user-1') ON CONFLICT DO NOTHING;
INSERT INTO chat_participant VALUES ('p1', 'chat1', 'c1'), ('p2', 'chat2', 'c2'), ('p3', 'chat3', 'c3')
    ON CONFLICT DO NOTHING;
INSERT INTO chat_message VALUES
    ('m1', 'chat1', 'p1', 'sent', 'bc-demo-0001', '2026-11-20T15:00:05Z'),
    ('m2', 'chat1', 'p1', 'received', NULL, '2026-11-20T17:00:00Z'),
    ('m3', 'chat2', 'p2', 'sent', 'bc-demo-0001', '2026-11-20T15:00:06Z'),
    ('m4', 'chat2', 'p2', 'received', NULL, '2026-11-23T15:00:00Z'),
    ('m5', 'chat3', 'p3', 'sent', 'bc-demo-0001', '2026-11-20T15:00:07Z'),
    ('m6', 'chat3', 'p3', 'received', NULL, '2026-11-29T15:00:00Z')
    ON CONFLICT DO NOTHING;
INSERT INTO leads VALUES ('l1', 'c1', 'appt-1', '2026-11-21T10:00:00Z', '2026-11-01T00:00:00Z')
    ON CONFLICT DO NOTHING;
