const MAX_NAME_LENGTH = 200;
const MAX_EXTENSION_LENGTH = 16;
/** Longer names are cut before any other work: nothing below may cost more than this. */
const MAX_RAW_LENGTH = 4096;

/** Drops trailing dots and whitespace in one pass (a `[\s.]+$` regex is quadratic on `...x`). */
function trimTrailingDotsAndSpace(s: string): string {
  let end = s.length;
  while (end > 0 && /[\s.]/.test(s.charAt(end - 1))) end--;
  return s.slice(0, end);
}

/**
 * A safe display name from whatever the client sent: the last path segment only (so
 * `../../etc/passwd` is `passwd`), no control, bidi-override or lone surrogate characters (which can disguise
 * `exe` as `txt`), no leading dots or trailing dots/spaces, at most 200 characters with the
 * extension kept. The name is only ever displayed and sent back in Content-Disposition.
 */
export function sanitizeFileName(raw: string): string {
  const last = raw.slice(-MAX_RAW_LENGTH).split(/[/\\]/).pop() ?? '';
  let name = trimTrailingDotsAndSpace(
    last
      .normalize('NFC')
      .replace(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu, '')
      .replace(/\s+/g, ' ')
      .replace(/^[\s.]+/, ''),
  );
  if ([...name].length > MAX_NAME_LENGTH) {
    const chars = [...name];
    const dot = name.lastIndexOf('.');
    const ext = dot > 0 ? name.slice(dot) : '';
    const keep = [...ext].length <= MAX_EXTENSION_LENGTH ? ext : '';
    name = chars.slice(0, MAX_NAME_LENGTH - [...keep].length).join('') + keep;
  }
  return name || 'file';
}

/** Lower-case extension without the dot, or ''. */
export function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}
