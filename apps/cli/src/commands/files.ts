import { openAsBlob, statSync } from 'node:fs';
import { basename } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import pc from 'picocolors';
import { allPages, resolveProject, withClient } from '../context';
import { UsageError } from '../errors';
import { printJson, printTable, shortDate, success } from '../output';

const CHUNK = 64 * 1024;

type Progress = (sent: number, total: number) => void;

/**
 * A fetch that sends multipart bodies as a counted stream, so the bar shows bytes actually
 * taken by the connection. The body is encoded once up front (files are capped at the
 * server's upload limit) to know its exact length.
 */
function progressFetch(onProgress: () => Progress | null): typeof globalThis.fetch {
  return async (input, init) => {
    const report = onProgress();
    if (!(init?.body instanceof FormData) || !report) return fetch(input, init);
    const encoded = new Response(init.body);
    const bytes = new Uint8Array(await encoded.arrayBuffer());
    const headers = new Headers(init.headers);
    headers.set('content-type', encoded.headers.get('content-type') ?? 'multipart/form-data');
    headers.set('content-length', String(bytes.length));
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        const end = Math.min(offset + CHUNK, bytes.length);
        controller.enqueue(bytes.subarray(offset, end));
        offset = end;
        report(offset, bytes.length);
      },
    });
    return fetch(input, { ...init, headers, body, duplex: 'half' } as RequestInit);
  };
}

function checkReadable(path: string): number {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`Not a file: ${path}`);
    return st.size;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`Cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

export function registerFiles(program: Command): void {
  const files = program.command('files').description("the project's files");

  files
    .command('upload <paths...>')
    .description('upload files (text, Markdown, JSON, CSV, HTML and PDF become searchable)')
    .action((paths: string[], _o, cmd: Command) => {
      for (const p of paths) checkReadable(p);
      let current: Progress | null = null;
      return withClient(
        cmd,
        async (ctx) => {
          const projectId = await resolveProject(ctx, ctx.opts.project);
          const showBar = !ctx.opts.json && Boolean(process.stderr.isTTY);
          const uploaded = [];
          for (const path of paths) {
            const name = basename(path);
            const blob = await openAsBlob(path);
            const form = new FormData();
            form.set('projectId', projectId);
            form.set('file', new File([blob], name, { type: blob.type }));
            const bar = showBar
              ? new SingleBar({
                  format: `${pc.cyan('{bar}')} {percentage}% | {value}/{total} bytes | ${name}`,
                  stream: process.stderr,
                  hideCursor: true,
                  clearOnComplete: false,
                })
              : null;
            let started = false;
            current = (sent, total) => {
              if (!bar) return;
              if (!started) bar.start(total, 0);
              started = true;
              bar.update(sent);
            };
            try {
              const file = await ctx.client.files.upload.mutate(form);
              uploaded.push(file);
              if (bar && started) bar.stop();
              started = false;
              if (!ctx.opts.json)
                success(`Uploaded ${name} (${file.size} bytes) ${pc.dim(file.id)}`);
            } finally {
              // On failure, end the bar before the error is printed below it.
              if (bar && started) bar.stop();
              current = null;
            }
          }
          if (ctx.opts.json) printJson(uploaded);
        },
        { fetch: progressFetch(() => current) },
      );
    });

  files
    .command('list')
    .description("list the project's files")
    .action((_o, cmd: Command) =>
      withClient(cmd, async (ctx) => {
        const projectId = await resolveProject(ctx, ctx.opts.project);
        const items = await allPages((cursor) =>
          ctx.client.files.list.query({ projectId, cursor, limit: 100 }),
        );
        if (ctx.opts.json) return printJson(items);
        printTable(
          ['id', 'name', 'type', 'bytes', 'uploaded'],
          items.map((f) => [f.id, f.name, f.mimeType, f.size, shortDate(f.createdAt)]),
        );
      }),
    );
}
