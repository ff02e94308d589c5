CREATE TYPE "public"."run_approval_kind" AS ENUM('tool', 'model');--> statement-breakpoint
CREATE TYPE "public"."run_approval_status" AS ENUM('pending', 'approved', 'rejected', 'expired', 'cancelled');--> statement-breakpoint
ALTER TYPE "public"."run_status" ADD VALUE 'awaiting_approval' BEFORE 'succeeded';--> statement-breakpoint
CREATE TABLE "run_approvals" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"run_id" uuid NOT NULL,
	"project_id" uuid NOT NULL,
	"step_key" text NOT NULL,
	"kind" "run_approval_kind" NOT NULL,
	"agent_id" uuid NOT NULL,
	"tool" text,
	"input" jsonb,
	"cost" bigint,
	"status" "run_approval_status" DEFAULT 'pending' NOT NULL,
	"requested_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"decided_by" uuid,
	"decided_at" timestamp (3) with time zone,
	"note" text
);
--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "requires_approval" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "policies" ADD COLUMN "approval_cost_threshold" bigint;--> statement-breakpoint
ALTER TABLE "run_approvals" ADD CONSTRAINT "run_approvals_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "run_approvals_step" ON "run_approvals" USING btree ("run_id","step_key");--> statement-breakpoint
CREATE INDEX "run_approvals_pending" ON "run_approvals" USING btree ("status","expires_at");