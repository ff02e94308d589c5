/**
 * Arithmetic without eval: a recursive-descent parser over numbers, + - * / % ^, parentheses,
 * unary signs and a few functions. Bounded input and depth, finite results only.
 */
const FUNCTIONS: Record<string, (...xs: number[]) => number> = {
  sqrt: Math.sqrt,
  abs: Math.abs,
  round: Math.round,
  floor: Math.floor,
  ceil: Math.ceil,
  log: Math.log,
  log10: Math.log10,
  exp: Math.exp,
  min: Math.min,
  max: Math.max,
  pow: Math.pow,
};
const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };
const MAX_LENGTH = 500;
const MAX_DEPTH = 50;

export class CalcError extends Error {}

export function evaluate(expression: string): number {
  if (expression.length > MAX_LENGTH)
    throw new CalcError(`expression longer than ${MAX_LENGTH} characters`);
  const tokens =
    expression.match(/\d+(?:\.\d+)?(?:e[+-]?\d+)?|\.\d+|[a-z_][a-z0-9_]*|\*\*|[-+*/%^(),]|\S/gi) ??
    [];
  let pos = 0;
  let depth = 0;
  const peek = () => tokens[pos];
  const take = (expected?: string) => {
    const t = tokens[pos];
    if (t === undefined || (expected !== undefined && t !== expected)) {
      throw new CalcError(expected ? `expected "${expected}"` : 'unexpected end of expression');
    }
    pos++;
    return t;
  };
  const nest = <T>(f: () => T): T => {
    if (++depth > MAX_DEPTH) throw new CalcError('expression nested too deeply');
    try {
      return f();
    } finally {
      depth--;
    }
  };

  // expr := term (('+'|'-') term)*
  const expr = (): number =>
    nest(() => {
      let v = term();
      while (peek() === '+' || peek() === '-') v = take() === '+' ? v + term() : v - term();
      return v;
    });
  // term := power (('*'|'/'|'%') power)*
  const term = (): number => {
    let v = power();
    for (let op = peek(); op === '*' || op === '/' || op === '%'; op = peek()) {
      take();
      const r = power();
      if ((op === '/' || op === '%') && r === 0) throw new CalcError('division by zero');
      v = op === '*' ? v * r : op === '/' ? v / r : v % r;
    }
    return v;
  };
  // power := unary (('^'|'**') power)?   (right-associative)
  const power = (): number => {
    const base = unary();
    if (peek() === '^' || peek() === '**') {
      take();
      return base ** nest(power);
    }
    return base;
  };
  const unary = (): number => {
    const sign = peek();
    if (sign === '-' || sign === '+') {
      take();
      const v = nest(unary);
      return sign === '-' ? -v : v;
    }
    return primary();
  };
  const primary = (): number => {
    const t = take();
    if (t === '(') {
      const v = expr();
      take(')');
      return v;
    }
    if (/^(\d|\.\d)/.test(t)) return Number(t);
    const name = t.toLowerCase();
    // Own properties only: "constructor" or "__proto__" must not reach Object's prototype.
    if (Object.hasOwn(CONSTANTS, name)) return CONSTANTS[name] ?? Number.NaN;
    const fn = Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined;
    if (fn) {
      take('(');
      const args = [expr()];
      while (peek() === ',') {
        take();
        args.push(expr());
      }
      take(')');
      return fn(...args);
    }
    throw new CalcError(`unknown symbol "${t}"`);
  };

  if (tokens.length === 0) throw new CalcError('empty expression');
  const value = expr();
  if (pos !== tokens.length) throw new CalcError(`unexpected "${tokens[pos]}"`);
  if (!Number.isFinite(value)) throw new CalcError('the result is not a finite number');
  return value;
}
