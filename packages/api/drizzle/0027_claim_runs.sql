-- Claims a project's queued runs, up to p_max running at once, in one statement (one round
-- trip, one commit) where it took a transaction of three. It holds the project's advisory lock
-- (the key the runner always used, so instances of either version exclude each other) from
-- its first statement to the caller's commit. Each later statement of a VOLATILE PL/pgSQL
-- function takes a fresh snapshot, so the count of running runs sees every claim the previous
-- holder committed. Returns the claimed runs, each with the number of steps it already stored
-- (a resumed run continues after them), and the agents the project's running runs start with
-- (their active and their own): as JSON, bigint columns as text.
CREATE OR REPLACE FUNCTION smartspace_claim_runs(p_project uuid, p_max int, p_heartbeat timestamptz)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  claimed jsonb;
  starting jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('runs:' || p_project::text));
  WITH picked AS (
    UPDATE runs SET status = 'running',
      started_at = coalesce(runs.started_at, now()),
      heartbeat_at = p_heartbeat
    WHERE runs.id IN (
      SELECT q.id FROM runs q
      WHERE q.project_id = p_project AND q.status = 'queued'
      ORDER BY q.created_at, q.id
      LIMIT greatest(0, p_max - (SELECT count(*) FROM runs r
        WHERE r.project_id = p_project AND r.status = 'running')))
    RETURNING runs.*
  )
  SELECT coalesce(jsonb_agg(to_jsonb(p) || jsonb_build_object(
      'cost', p.cost::text,
      'step_count', (SELECT count(*) FROM run_steps s WHERE s.run_id = p.id))
    ORDER BY p.created_at, p.id), '[]')
  INTO claimed FROM picked p;
  IF claimed = '[]'::jsonb THEN
    RETURN jsonb_build_object('runs', claimed, 'agents', '[]'::jsonb);
  END IF;
  SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO starting FROM agents a
  WHERE a.id IN (
    SELECT r.active_agent_id FROM runs r WHERE r.project_id = p_project AND r.status = 'running'
    UNION SELECT r.agent_id FROM runs r WHERE r.project_id = p_project AND r.status = 'running');
  RETURN jsonb_build_object('runs', claimed, 'agents', starting);
END;
$$;
