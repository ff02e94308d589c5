CREATE INDEX "conversations_project_creator_idx" ON "conversations" USING btree ("project_id","created_by","created_at","id");--> statement-breakpoint
CREATE INDEX "payments_status_created_idx" ON "payments" USING btree ("status","created_at","id");--> statement-breakpoint
CREATE INDEX "runs_project_agent_idx" ON "runs" USING btree ("project_id","agent_id","created_at","id");