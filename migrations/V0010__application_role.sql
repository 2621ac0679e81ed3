-- Two roles (SPEC §7): the owner, which runs these migrations and owns every table, and
-- `df_app`, what the functions connect as. `df_app` may read and write the working
-- tables but may only INSERT and SELECT the opt-out audit and its evidence, may not
-- write the registry (the audit's triggers do), and — owning nothing — can neither
-- ALTER (DISABLE TRIGGER), DROP nor TRUNCATE anything. Created NOLOGIN when missing;
-- the deployment gives it a login (or grants it to the login role the functions use).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'df_app') THEN
        CREATE ROLE df_app NOLOGIN;
    END IF;
EXCEPTION
    -- Roles belong to the server: another database's migration made it a moment ago.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO df_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO df_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO df_app;
-- Tables later migrations create get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO df_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO df_app;

-- The audit and its evidence: append-only for the application.
REVOKE UPDATE, DELETE, TRUNCATE ON optout_events, optout_review_resolutions, compliance_incidents FROM df_app;
-- Replies and sends are the audit's evidence too: never deleted (a send's status is
-- updated when its answer comes, a reply's send id when it is sent).
REVOKE DELETE, TRUNCATE ON optout_replies, texting_sends FROM df_app;
-- The registry is the audit's own projection.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON optout_registry FROM df_app;
-- The migrations' own bookkeeping is the owner's.
REVOKE ALL ON schema_migrations FROM df_app;
