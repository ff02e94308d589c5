-- The audit log is append-only, enforced by the database and not only by code: UPDATE,
-- DELETE and TRUNCATE of audit_events always fail. Only the table's owner can disable the
-- trigger, and a row changed or removed meanwhile breaks the hash chain audit.verify walks.
-- Statement-level, so even a statement that matches no row is refused.
CREATE OR REPLACE FUNCTION smartspace_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Audit events are never changed or removed; record a new event instead.';
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER audit_events_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
  FOR EACH STATEMENT
  EXECUTE FUNCTION smartspace_audit_append_only();
