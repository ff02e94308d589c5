DROP INDEX "api_requests_project_model_idx";--> statement-breakpoint
DROP INDEX "api_requests_project_agent_idx";--> statement-breakpoint
DROP INDEX "api_requests_project_user_idx";--> statement-breakpoint
DROP INDEX "api_requests_project_key_idx";