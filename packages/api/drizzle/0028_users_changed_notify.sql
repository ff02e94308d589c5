-- A change to what a session check reads of a user (email, name, role, whether active) is
-- announced, so every server instance forgets the session checks it keeps for that user
-- (modules/auth/session-cache.ts). A trigger rather than each writer: a change made anywhere,
-- a manual UPDATE included, is announced.
CREATE OR REPLACE FUNCTION smartspace_user_changed() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('smartspace_users', NEW.id::text);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER users_changed_notify
  AFTER UPDATE OF email, name, role, active ON users
  FOR EACH ROW
  WHEN (OLD.email IS DISTINCT FROM NEW.email OR OLD.name IS DISTINCT FROM NEW.name
    OR OLD.role IS DISTINCT FROM NEW.role OR OLD.active IS DISTINCT FROM NEW.active)
  EXECUTE FUNCTION smartspace_user_changed();
