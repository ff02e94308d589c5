const MAX_NAME_LENGTH = 200;
const MAX_EXTENSION_LENGTH = 16;

/**
 * A safe display name from whatever the client sent: the last path segment only (so
 * `../../etc/passwd` is `passwd`), no control or bidi-override characters (which can disguise
 * `exe` as `txt`), no leading dots or trailing dots/spaces, at most 200 characters with the
 * extension kept. The name is only ever displayed and sent back in Content-Disposition.
 */
export function sanitizeFileName(raw: string): string {
  const last = raw.split(/[/\\]/).pop() ?? '';
  let name = last
    .normalize('NFC')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '')
    .replace(/\s+/g, ' ')
    .replace(/^[\s.]+/, '')
    .replace(/[\s.]+$/, '');
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
