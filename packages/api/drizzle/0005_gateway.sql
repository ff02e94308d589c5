CREATE TYPE "public"."ledger_kind" AS ENUM('deposit', 'credit', 'charge', 'refund', 'reversal');--> statement-breakpoint
CREATE TYPE "public"."budget_period" AS ENUM('day', 'week', 'month', 'total');--> statement-breakpoint
CREATE TYPE "public"."budget_scope" AS ENUM('project', 'agent', 'member');--> statement-breakpoint
CREATE TYPE "public"."request_source" AS ENUM('chat', 'run');--> statement-breakpoint
CREATE TYPE "public"."request_status" AS ENUM('in_progress', 'succeeded', 'failed', 'cancelled', 'denied');--> statement-breakpoint
CREATE TABLE "ledger_entries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"project_id" uuid NOT NULL,
	"kind" "ledger_kind" NOT NULL,
	"amount" bigint NOT NULL,
	"balance_after" bigint NOT NULL,
	"reference" text NOT NULL,
	"reason" text,
	"actor_id" uuid,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ledger_entries_reference_unique" UNIQUE("reference")
);
--> statement-breakpoint
CREATE TABLE "project_balances" (
	"project_id" uuid PRIMARY KEY NOT NULL,
	"balance" bigint DEFAULT 0 NOT NULL,
	"reserved" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "project_balances_balance_nonnegative" CHECK ("project_balances"."balance" >= 0),
	CONSTRAINT "project_balances_reserved_nonnegative" CHECK ("project_balances"."reserved" >= 0),
	CONSTRAINT "project_balances_reserved_covered" CHECK ("project_balances"."reserved" <= "project_balances"."balance")
);
--> statement-breakpoint
CREATE TABLE "budget_alerts" (
	"limit_id" uuid NOT NULL,
	"period_start" timestamp (3) with time zone NOT NULL,
	"threshold" real NOT NULL,
	"spent" bigint NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "budget_alerts_limit_id_period_start_threshold_pk" PRIMARY KEY("limit_id","period_start","threshold")
);
--> statement-breakpoint
CREATE TABLE "budget_limits" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"project_id" uuid NOT NULL,
	"scope" "budget_scope" NOT NULL,
	"scope_id" uuid,
	"period" "budget_period" NOT NULL,
	"amount" bigint NOT NULL,
	"alert_at" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "budget_limits_amount_positive" CHECK ("budget_limits"."amount" > 0),
	CONSTRAINT "budget_limits_scope_id" CHECK (("budget_limits"."scope" = 'project') = ("budget_limits"."scope_id" is null))
);
--> statement-breakpoint
CREATE TABLE "budget_usage" (
	"limit_id" uuid NOT NULL,
	"period_start" timestamp (3) with time zone NOT NULL,
	"spent" bigint DEFAULT 0 NOT NULL,
	"reserved" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "budget_usage_limit_id_period_start_pk" PRIMARY KEY("limit_id","period_start"),
	CONSTRAINT "budget_usage_nonnegative" CHECK ("budget_usage"."spent" >= 0 and "budget_usage"."reserved" >= 0)
);
--> statement-breakpoint
CREATE TABLE "policies" (
	"project_id" uuid PRIMARY KEY NOT NULL,
	"allowed_models" jsonb,
	"max_output_tokens" integer,
	"max_cost_per_request" bigint,
	"requests_per_minute" integer,
	"tokens_per_minute" integer,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_request_holds" (
	"request_id" uuid NOT NULL,
	"limit_id" uuid NOT NULL,
	"period_start" timestamp (3) with time zone NOT NULL,
	"amount" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"project_id" uuid NOT NULL,
	"user_id" uuid,
	"agent_id" uuid,
	"run_id" uuid,
	"conversation_id" uuid,
	"source" "request_source" NOT NULL,
	"model" text NOT NULL,
	"status" "request_status" NOT NULL,
	"error_code" text,
	"input_tokens" integer DEFAULT 0 NOT NULL,
	"output_tokens" integer DEFAULT 0 NOT NULL,
	"cost" bigint DEFAULT 0 NOT NULL,
	"reserved" bigint DEFAULT 0 NOT NULL,
	"latency_ms" integer,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp (3) with time zone,
	"heartbeat_at" timestamp (3) with time zone
);
--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_actor_id_users_id_fk" FOREIGN KEY ("actor_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "project_balances" ADD CONSTRAINT "project_balances_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budget_alerts" ADD CONSTRAINT "budget_alerts_limit_id_budget_limits_id_fk" FOREIGN KEY ("limit_id") REFERENCES "public"."budget_limits"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budget_limits" ADD CONSTRAINT "budget_limits_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budget_usage" ADD CONSTRAINT "budget_usage_limit_id_budget_limits_id_fk" FOREIGN KEY ("limit_id") REFERENCES "public"."budget_limits"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "policies" ADD CONSTRAINT "policies_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_request_holds" ADD CONSTRAINT "api_request_holds_request_id_api_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."api_requests"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "ledger_entries_project_idx" ON "ledger_entries" USING btree ("project_id","created_at","id");--> statement-breakpoint
CREATE INDEX "budget_limits_project_idx" ON "budget_limits" USING btree ("project_id");--> statement-breakpoint
CREATE INDEX "api_request_holds_request_idx" ON "api_request_holds" USING btree ("request_id");--> statement-breakpoint
CREATE INDEX "api_requests_project_time_idx" ON "api_requests" USING btree ("project_id","created_at");--> statement-breakpoint
CREATE INDEX "api_requests_project_model_idx" ON "api_requests" USING btree ("project_id","model","created_at");--> statement-breakpoint
CREATE INDEX "api_requests_project_agent_idx" ON "api_requests" USING btree ("project_id","agent_id","created_at");--> statement-breakpoint
CREATE INDEX "api_requests_project_user_idx" ON "api_requests" USING btree ("project_id","user_id","created_at");--> statement-breakpoint
CREATE INDEX "api_requests_in_progress_idx" ON "api_requests" USING btree ("status","heartbeat_at");