import type { Command } from 'commander';
import { allPages, globals, resolveProject, withClient } from '../context';
import { printJson, printTable, shortDate, success } from '../output';

export function registerProjects(program: Command): void {
  const projects = program.command('projects').description('your projects');

  projects
    .command('list')
    .description('list the projects you belong to')
    .action((_o, cmd: Command) =>
      withClient(cmd, async ({ client, opts }) => {
        const items = await allPages((cursor) =>
          client.projects.list.query({ cursor, limit: 100 }),
        );
        if (opts.json) return printJson(items);
        printTable(
          ['id', 'name', 'description', 'created'],
          items.map((p) => [p.id, p.name, p.description, shortDate(p.createdAt)]),
        );
      }),
    );

  projects
    .command('create <name>')
    .description('create a project (you become its owner)')
    .option('-d, --description <text>', 'what the project is for')
    .action((name: string, o: { description?: string }, cmd: Command) =>
      withClient(cmd, async ({ client, opts }) => {
        const project = await client.projects.create.mutate({ name, description: o.description });
        if (opts.json) return printJson(project);
        success(`Created project ${project.name}`);
        process.stdout.write(`${project.id}\n`);
      }),
    );

  projects
    .command('members [project]')
    .description('list the members of a project (id or name)')
    .action((ref: string | undefined, _o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ref ?? globals(cmd).project);
        const members = await ctx.client.projects.members.list.query({ projectId });
        if (ctx.opts.json) return printJson(members);
        printTable(
          ['user id', 'email', 'name', 'role'],
          members.map((m) => [m.userId, m.email, m.name, m.role]),
        );
      }),
    );
}
