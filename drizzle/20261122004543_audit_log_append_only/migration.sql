-- The audit log is append-only: who changed what, and when, must survive the application that
-- wrote it (a bug, a careless script, a query built from the wrong input). A REVOKE would not
-- hold: the service connects as the tables' owner or a superuser (it runs the migrations; the
-- tests and the embedded PGlite database do too), and privileges bind neither. A trigger binds
-- every role, owners and superusers included, for UPDATE, DELETE and TRUNCATE.
-- A DBA can still remove the rows deliberately: DROP TRIGGER (or ALTER TABLE ... DISABLE
-- TRIGGER), which needs the table's owner or a superuser, then put the trigger back. That is a
-- schema change, made on purpose, not a query the application issues. Where even that must be
-- out of the service's reach, run the API and worker as a role that does not own the tables.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'audit rows are never changed or removed; a DBA who must do so drops the trigger deliberately';
END;
$$;
--> statement-breakpoint
-- Statement-level, so that even an UPDATE or DELETE that matches no row is refused, and
-- TRUNCATE (which fires no row triggers) too.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
