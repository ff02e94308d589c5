import { createHash } from 'node:crypto';
import { fileTypeFromBuffer } from 'file-type';
import { AppError } from '../../lib/errors';
import { extensionOf } from './names';

/** Enough for every signature file-type knows. */
const HEAD_BYTES = 4100;

export interface Inspection {
  size: number;
  sha256: string;
  head: Buffer;
  /** Valid UTF-8 without control characters other than tab, newline, form feed, CR. */
  text: boolean;
}

/**
 * Passes chunks through while counting, hashing, keeping the first bytes for sniffing and
 * checking whether the whole content is text. Throws `files.too_large` past `maxBytes`, which
 * aborts the storage write it feeds.
 */
export async function* inspect(
  source: AsyncIterable<Uint8Array>,
  maxBytes: number,
  out: { result?: Inspection },
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const headParts: Buffer[] = [];
  let headLength = 0;
  let size = 0;
  let text = true;
  for await (const piece of source) {
    const chunk = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(maxBytes);
    hash.update(chunk);
    if (headLength < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - headLength);
      headParts.push(Buffer.from(part));
      headLength += part.length;
    }
    if (text) text = isTextChunk(chunk, decoder);
    yield chunk;
  }
  if (text) {
    try {
      decoder.decode();
    } catch {
      text = false;
    }
  }
  out.result = { size, sha256: hash.digest('hex'), head: Buffer.concat(headParts), text };
}

export function tooLarge(maxBytes: number): AppError {
  return new AppError('files.too_large', `Files may be at most ${maxBytes} bytes`, { maxBytes });
}

function isTextChunk(chunk: Buffer, decoder: TextDecoder): boolean {
  for (const byte of chunk) {
    if ((byte < 0x20 && byte !== 9 && byte !== 10 && byte !== 12 && byte !== 13) || byte === 0x7f)
      return false;
  }
  try {
    decoder.decode(chunk, { stream: true });
    return true;
  } catch {
    return false;
  }
}

/**
 * The content type, from the bytes: magic numbers first (file-type), then, for text, what the
 * content looks like and the extension. The client's declared type is never consulted, and
 * active content (HTML, SVG, XML) is recognised by content whatever the name says.
 */
export async function detectType(inspection: Inspection, name: string): Promise<string> {
  const magic = await fileTypeFromBuffer(inspection.head);
  if (magic && !(inspection.text && magic.mime === 'application/xml')) return magic.mime;
  if (!inspection.text) return 'application/octet-stream';
  const start = inspection.head
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .trimStart()
    .slice(0, 512)
    .toLowerCase();
  if (start.startsWith('<!doctype html') || start.startsWith('<html')) return 'text/html';
  if (start.startsWith('<svg') || (start.startsWith('<?xml') && start.includes('<svg'))) {
    return 'image/svg+xml';
  }
  if (start.startsWith('<?xml')) return 'application/xml';
  const ext = extensionOf(name);
  if (ext === 'html' || ext === 'htm') return 'text/html';
  if (ext === 'md' || ext === 'markdown') return 'text/markdown';
  if (ext === 'csv') return 'text/csv';
  // Confirmed (or demoted to text/plain) by parsing when the text is extracted.
  if (ext === 'json' || start.startsWith('{') || start.startsWith('[')) return 'application/json';
  return 'text/plain';
}
