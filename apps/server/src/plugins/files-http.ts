/**
 * HTTP details of file downloads: Content-Disposition for any name, which types a browser
 * may render inline, and byte ranges.
 */

// RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"; everything else is percent-encoded.
const encodeRfc5987 = (value: string) =>
  encodeURIComponent(value).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

/**
 * RFC 6266: an ASCII `filename` for old clients (accents dropped, anything unsafe in a
 * quoted-string or a path replaced by `_`) and the exact name as `filename*` (RFC 5987).
 */
export function contentDisposition(type: 'inline' | 'attachment', name: string): string {
  const ascii =
    name
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .replace(/[^\x20-\x7e]|["\\%;/]/g, '_')
      .trim() || 'file';
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encodeRfc5987(name)}`;
}

/**
 * Types a browser renders without running anything. Everything else (HTML, SVG, XML, scripts,
 * unknown binaries) is served as an attachment; every response also carries `nosniff` and a
 * `sandbox` CSP, so even an active file opened directly runs no script with our origin.
 */
const INLINE = new Set([
  'text/plain',
  'text/markdown',
  'text/csv',
  'application/json',
  'application/pdf',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
  'audio/mpeg',
  'audio/ogg',
  'audio/wav',
  'video/mp4',
  'video/webm',
]);

export function dispositionFor(mimeType: string): 'inline' | 'attachment' {
  return INLINE.has(mimeType) ? 'inline' : 'attachment';
}

/** Text we detected is UTF-8, so say so (a browser must not guess another charset). */
export function contentTypeHeader(mimeType: string): string {
  return mimeType.startsWith('text/') || mimeType === 'application/json'
    ? `${mimeType}; charset=utf-8`
    : mimeType;
}

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/**
 * One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`. A header we do not understand,
 * or several ranges, is answered with the whole file (the RFC lets a server ignore Range),
 * so clients never have to parse multipart/byteranges.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (!header) return { kind: 'full' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}
