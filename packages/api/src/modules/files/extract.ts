import { convert } from 'html-to-text';
import { extractText, getDocumentProxy } from 'unpdf';

/** Larger files are stored but not indexed: their text would dwarf every other document. */
export const EXTRACT_MAX_BYTES = 32 * 1024 * 1024;

export interface Extracted {
  /** The type after a closer look (a `.json` that does not parse is plain text). */
  mimeType: string;
  /** Plain text for the project's documents, or null when the type carries none. */
  text: string | null;
}

/** Text of the types grounded chat and the agents' document tools can use. */
export async function extractFileText(mimeType: string, bytes: Uint8Array): Promise<Extracted> {
  const decode = () => new TextDecoder('utf-8').decode(bytes).replace(/^\uFEFF/, '');
  switch (mimeType) {
    case 'text/plain':
    case 'text/markdown':
    case 'text/csv':
      return { mimeType, text: decode() };
    case 'application/json': {
      const text = decode();
      try {
        JSON.parse(text);
        return { mimeType, text };
      } catch {
        return { mimeType: 'text/plain', text };
      }
    }
    case 'text/html':
      // A real HTML parser: scripts, styles and markup never reach the index.
      return {
        mimeType,
        text: convert(decode(), {
          wordwrap: false,
          selectors: [
            { selector: 'a', options: { ignoreHref: true } },
            { selector: 'img', format: 'skip' },
            { selector: 'script', format: 'skip' },
            { selector: 'style', format: 'skip' },
            { selector: 'noscript', format: 'skip' },
            { selector: 'template', format: 'skip' },
          ],
        }),
      };
    case 'application/pdf': {
      const pdf = await getDocumentProxy(bytes, { verbosity: 0 });
      try {
        const { text } = await extractText(pdf, { mergePages: true });
        return { mimeType, text };
      } finally {
        await pdf.destroy();
      }
    }
    default:
      return { mimeType, text: null };
  }
}
