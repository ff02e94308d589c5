import ReactMarkdown from 'react-markdown';
import rehypeHighlight from 'rehype-highlight';

/**
 * A reply as Markdown with highlighted code. Raw HTML in the text is shown as text, never
 * rendered (react-markdown's default), so a reply cannot inject markup.
 */
export function Markdown({ text }: { text: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown rehypePlugins={[[rehypeHighlight, { detect: true, ignoreMissing: true }]]}>
        {text}
      </ReactMarkdown>
    </div>
  );
}
