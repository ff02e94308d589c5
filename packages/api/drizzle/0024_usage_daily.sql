CREATE TABLE "usage_daily" (
	"project_id" uuid NOT NULL,
	"day" date NOT NULL,
	"dimension" text NOT NULL,
	"key" text,
	"requests" bigint NOT NULL,
	"input_tokens" bigint NOT NULL,
	"output_tokens" bigint NOT NULL,
	"cache_write_tokens" bigint NOT NULL,
	"cache_read_tokens" bigint NOT NULL,
	"cost" bigint NOT NULL,
	CONSTRAINT "usage_daily_key" UNIQUE NULLS NOT DISTINCT("project_id","dimension","day","key")
);
--> statement-breakpoint
-- The calls finished so far, summed as the gateway now sums each one it settles.
INSERT INTO "usage_daily" ("project_id", "day", "dimension", "key", "requests", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cost")
SELECT r."project_id", (r."created_at" AT TIME ZONE 'UTC')::date, d."dimension", d."key", count(*), sum(r."input_tokens"), sum(r."output_tokens"), sum(r."cache_write_tokens"), sum(r."cache_read_tokens"), sum(r."cost")
FROM "api_requests" r
CROSS JOIN LATERAL (VALUES ('all', NULL), ('model', r."model"), ('agent', r."agent_id"::text), ('member', r."user_id"::text), ('key', r."key_id"::text)) AS d("dimension", "key")
WHERE r."status" <> 'in_progress'
GROUP BY 1, 2, 3, 4;
