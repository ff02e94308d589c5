import { describe, expect, it } from 'vitest';
import { parseSchemaText, schemaToText } from './schema';

describe('parseSchemaText', () => {
  it('blank is no schema; an object is the schema', () => {
    expect(parseSchemaText('  \n')).toEqual({ ok: true, schema: null });
    expect(parseSchemaText('{"type": "object"}')).toEqual({ ok: true, schema: { type: 'object' } });
  });

  it('says where the JSON breaks', () => {
    const r = parseSchemaText('{\n  "type": "object",\n}');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/^Not valid JSON: .*line 3/);
  });

  it('refuses JSON that is not an object', () => {
    for (const text of ['[1]', '"x"', '3', 'null', 'true']) {
      expect(parseSchemaText(text)).toMatchObject({ ok: false, error: /JSON object/ });
    }
  });

  it('round-trips through the editor text', () => {
    const schema = { type: 'object', properties: { a: { type: 'number' } } };
    expect(parseSchemaText(schemaToText(schema))).toEqual({ ok: true, schema });
    expect(schemaToText(null)).toBe('');
  });
});
