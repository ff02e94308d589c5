import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { splitPassages } from '../documents/documents.service';

/** One documentation file: its name (cited in answers) and its text. */
export interface DocFile {
  name: string;
  content: string;
}

async function markdownFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries
      .filter((e) => !e.name.startsWith('.') && e.name !== 'node_modules')
      .map(async (e) => {
        const path = join(dir, e.name);
        if (e.isDirectory()) return markdownFiles(path);
        return e.isFile() && e.name.toLowerCase().endsWith('.md') ? [path] : [];
      }),
  );
  return nested.flat();
}

/**
 * The documentation at `path`: one markdown file, or every .md file under a folder (named by
 * their path inside it), sorted by name so the same files always load the same way.
 */
export async function readDocs(path: string): Promise<DocFile[]> {
  const info = await stat(path);
  if (info.isFile()) return [{ name: basename(path), content: await readFile(path, 'utf8') }];
  const files = await markdownFiles(path);
  // Most likely a wrong path: keep the docs already loaded rather than wipe them.
  if (files.length === 0) throw new Error(`PLATFORM_DOCS_PATH: no .md file under ${path}`);
  const docs = await Promise.all(
    files.map(async (f) => ({
      name: relative(path, f).split('\\').join('/'),
      content: await readFile(f, 'utf8'),
    })),
  );
  return docs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * A digest of documents as they are stored: names and passages. Computed the same way from
 * files about to load and from the rows already loaded, so no hash needs its own column and
 * the stored rows stay the only truth.
 */
export function fingerprint(docs: { name: string; passages: string[] }[]): string {
  const h = createHash('sha256');
  for (const d of [...docs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(d.name).update('\0').update(String(d.passages.length)).update('\0');
    for (const p of d.passages) h.update(p).update('\0');
  }
  return h.digest('hex');
}

export function passagesOf(docs: DocFile[]): { name: string; passages: string[] }[] {
  return docs.map((d) => ({ name: d.name, passages: splitPassages(d.content) }));
}
