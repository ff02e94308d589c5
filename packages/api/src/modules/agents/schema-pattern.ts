import type { Options } from 'ajv';
import { RE2JS } from 're2js';

// Ajv's engine types, through its public Options (its index does not export them).
type RegExpEngine = NonNullable<NonNullable<Options['code']>['regExp']>;
type RegExpLike = ReturnType<RegExpEngine>;

/**
 * Regular expressions from users' JSON Schemas (`pattern`, `patternProperties`) run on RE2
 * (re2js, pure JavaScript), whose matching time is linear in the input: a pattern such as
 * `^(a+)+$` cannot stall the event loop as it does on V8's backtracking engine, where each
 * extra character doubles the time. Backreferences and lookarounds have no linear-time
 * algorithm, so such patterns are refused when the schema is saved.
 */

/**
 * The most regular-expression program (RE2 instructions) one schema may hold. Matching
 * costs up to (input length × program size) when RE2 falls back from its DFA to its NFA,
 * so this bounds the worst case of validating one answer; everyday patterns (dates, ids,
 * e-mail shapes) take 10 to 50 each.
 */
export const PATTERN_PROGRAM_BUDGET = 2_000;

// ECMAScript's \s (WhiteSpace and LineTerminator), its complement, and what `.` excludes:
// RE2's own \s is ASCII only and its `.` excludes only \n, so these are spelled out.
const SPACE =
  '\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff';
const NOT_SPACE =
  '\\u0000-\\u0008\\u000e-\\u001f\\u0021-\\u009f\\u00a1-\\u167f\\u1681-\\u1fff\\u200b-\\u2027' +
  '\\u202a-\\u202e\\u2030-\\u205e\\u2060-\\u2fff\\u3001-\\ufefe\\uff00-\\u{10ffff}';
const DOT = '[^\\n\\r\\u2028\\u2029]';

class UnsupportedPattern extends Error {
  constructor(pattern: string, why: string) {
    super(`pattern "${pattern}" is not supported: ${why}`);
  }
}

/**
 * `pattern` (ECMAScript syntax, already checked by the native parser) in the syntax RE2JS
 * translates, with ECMAScript's meaning of \s, \S and `.`; throws on what RE2 cannot run.
 */
function toLinearSyntax(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '\\') {
      const next = pattern.charAt(++i);
      if (!inClass && (/[1-9]/.test(next) || next === 'k')) {
        throw new UnsupportedPattern(pattern, 'backreferences cannot be matched in linear time');
      }
      if (next === 's') out += inClass ? SPACE : `[${SPACE}]`;
      else if (next === 'S') out += inClass ? NOT_SPACE : `[^${SPACE}]`;
      else out += c + next;
    } else if (inClass) {
      if (c === ']') inClass = false;
      // A literal `[` in an ECMAScript class; to RE2, `[:` may open a POSIX class.
      out += c === '[' ? '\\[' : c;
    } else if (c === '[') {
      let open = c;
      if (pattern.charAt(i + 1) === '^') open += pattern.charAt(++i);
      // `[]` (nothing) and `[^]` (anything) end at once in ECMAScript; RE2JS translates them.
      if (pattern.charAt(i + 1) === ']') {
        out += `${open}${pattern.charAt(++i)}`;
      } else {
        out += open;
        inClass = true;
      }
    } else if (c === '(' && /^\(\?<?[=!]/.test(pattern.slice(i, i + 4))) {
      throw new UnsupportedPattern(
        pattern,
        'lookaround assertions cannot be matched in linear time',
      );
    } else {
      out += c === '.' ? DOT : c;
    }
  }
  return RE2JS.translateRegExp(out);
}

class LinearPattern implements RegExpLike {
  constructor(
    private readonly re: RE2JS,
    private readonly source: string,
  ) {}
  test(input: string): boolean {
    return this.re.test(input);
  }
  /** Ajv shares one compiled pattern per distinct toString() within a schema. */
  toString(): string {
    return `/${this.source}/u`;
  }
}

/**
 * A RegExp engine for one Ajv instance (one schema): each distinct pattern is compiled once,
 * and the schema's patterns together may not exceed PATTERN_PROGRAM_BUDGET.
 */
export function linearRegExpEngine(): RegExpEngine {
  const compiled = new Map<string, LinearPattern>();
  let programSize = 0;
  const engine = (pattern: string, flags: string): RegExpLike => {
    const known = compiled.get(pattern);
    if (known) return known;
    // JSON Schema patterns are ECMAScript regular expressions: refuse what is not one, even
    // where RE2 would accept it (`(?i)`, `\z`), so a schema means the same everywhere.
    new RegExp(pattern, flags);
    let re: RE2JS;
    try {
      re = RE2JS.compile(toLinearSyntax(pattern));
    } catch (e) {
      if (e instanceof UnsupportedPattern) throw e;
      throw new UnsupportedPattern(pattern, e instanceof Error ? e.message : String(e));
    }
    programSize += re.programSize();
    if (programSize > PATTERN_PROGRAM_BUDGET) {
      throw new Error(
        `the schema's patterns are too complex (regular-expression program size over ${PATTERN_PROGRAM_BUDGET}); simplify them, or use maxLength or enum`,
      );
    }
    const linear = new LinearPattern(re, pattern);
    compiled.set(pattern, linear);
    return linear;
  };
  // Ajv writes `code` only into standalone (generated-module) output, which is not used here.
  return Object.assign(engine, { code: 'linearRegExp' });
}
