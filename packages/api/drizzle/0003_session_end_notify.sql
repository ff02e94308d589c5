-- Any session that ends (logout, logoutAll, password change or reset, deactivation, refresh
-- reuse) is announced, so every server instance closes that session's open sockets at once.
CREATE OR REPLACE FUNCTION smartspace_session_ended() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('smartspace_sessions', NEW.id::text);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER sessions_ended_notify
  AFTER UPDATE OF revoked_at ON sessions
  FOR EACH ROW
  WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
  EXECUTE FUNCTION smartspace_session_ended();
