CREATE TABLE "gateway_lease_holds" (
	"lease_id" uuid NOT NULL,
	"limit_id" uuid NOT NULL,
	"period_start" timestamp (3) with time zone NOT NULL,
	"amount" bigint NOT NULL,
	CONSTRAINT "gateway_lease_holds_lease_id_limit_id_period_start_pk" PRIMARY KEY("lease_id","limit_id","period_start"),
	CONSTRAINT "gateway_lease_holds_nonnegative" CHECK ("gateway_lease_holds"."amount" >= 0)
);
--> statement-breakpoint
CREATE TABLE "gateway_leases" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" uuid NOT NULL,
	"owner" text NOT NULL,
	"balance_held" bigint DEFAULT 0 NOT NULL,
	"heartbeat_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "gateway_leases_balance_nonnegative" CHECK ("gateway_leases"."balance_held" >= 0)
);
--> statement-breakpoint
ALTER TABLE "gateway_lease_holds" ADD CONSTRAINT "gateway_lease_holds_lease_id_gateway_leases_id_fk" FOREIGN KEY ("lease_id") REFERENCES "public"."gateway_leases"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "gateway_lease_holds" ADD CONSTRAINT "gateway_lease_holds_limit_id_budget_limits_id_fk" FOREIGN KEY ("limit_id") REFERENCES "public"."budget_limits"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "gateway_leases" ADD CONSTRAINT "gateway_leases_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "gateway_leases_heartbeat_idx" ON "gateway_leases" USING btree ("heartbeat_at");