-- Concurrent budgets.setLimit calls could each insert the same limit (issue "Hardening" #7).
-- Before the unique constraint, merge duplicates: per (project, scope, scope id, period) the
-- newest row is kept (the latest setting wins). Writers wait meanwhile, so no new duplicate
-- slips in between the merge and the constraint.
LOCK TABLE "budget_limits", "budget_usage", "budget_alerts" IN EXCLUSIVE MODE;
--> statement-breakpoint
CREATE TEMPORARY TABLE "budget_limit_duplicates" AS
SELECT "id" AS "duplicate_id", "keep_id"
FROM (
	SELECT "id", first_value("id") OVER (
		PARTITION BY "project_id", "scope", "scope_id", "period"
		ORDER BY "created_at" DESC, "id" DESC
	) AS "keep_id"
	FROM "budget_limits"
) AS "ranked"
WHERE "id" <> "keep_id";
--> statement-breakpoint
-- Every duplicate was held and charged for the same calls, so the kept limit takes the
-- highest spend per period, not the sum. Its reservation stays its own: calls in flight
-- release their holds by limit id, and those on a removed duplicate release nothing.
INSERT INTO "budget_usage" ("limit_id", "period_start", "spent", "reserved")
SELECT d."keep_id", u."period_start", max(u."spent"), 0
FROM "budget_usage" u
JOIN "budget_limit_duplicates" d ON d."duplicate_id" = u."limit_id"
GROUP BY d."keep_id", u."period_start"
ON CONFLICT ("limit_id", "period_start")
DO UPDATE SET "spent" = greatest("budget_usage"."spent", excluded."spent");
--> statement-breakpoint
-- An alert a duplicate already fired stays fired: it must not fire again for the kept limit.
INSERT INTO "budget_alerts" ("limit_id", "period_start", "threshold", "spent", "created_at")
SELECT DISTINCT ON (d."keep_id", a."period_start", a."threshold")
	d."keep_id", a."period_start", a."threshold", a."spent", a."created_at"
FROM "budget_alerts" a
JOIN "budget_limit_duplicates" d ON d."duplicate_id" = a."limit_id"
ORDER BY d."keep_id", a."period_start", a."threshold", a."created_at"
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Their usage and alert rows go with them (ON DELETE CASCADE).
DELETE FROM "budget_limits"
WHERE "id" IN (SELECT "duplicate_id" FROM "budget_limit_duplicates");
--> statement-breakpoint
DROP TABLE "budget_limit_duplicates";
--> statement-breakpoint
ALTER TABLE "budget_limits" ADD CONSTRAINT "budget_limits_identity_unique" UNIQUE NULLS NOT DISTINCT("project_id","scope","scope_id","period");
