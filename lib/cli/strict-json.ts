/**
 * A strict JSON parser for headers from untrusted files (safetensors). Unlike JSON.parse it refuses
 * duplicate object keys (JSON.parse keeps the last, so two readers could see different tensors),
 * bounds the nesting depth (no stack overflow on `[[[[...`), refuses lone surrogates in escapes, keeps
 * objects as Maps (a key "__proto__" is a key like any other) and tells integer literals apart from
 * the others (a shape of 2.0 or 1e3 is not a shape). Errors say what and at which character.
 * @module
 */

/** A number literal that is not a safe integer written as one (a fraction, an exponent, or too large). */
export class OtherNumber {
  constructor(readonly literal: string) {}
}

export type JsonValue = string | number | OtherNumber | boolean | null | JsonValue[] | Map<string, JsonValue>;

/** A syntax error: the message says what and where. */
export class JsonSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/** The deepest nesting of arrays and objects accepted. */
export const MAX_DEPTH = 32;

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
/** A JSON number literal, matched where the parser stands. */
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** A short, printable rendering of a character for messages. */
function show(c: string | undefined): string {
  if (c === undefined) return 'end of text';
  const code = c.charCodeAt(0);
  return code < 0x20 || code === 0x7f ? `character U+${code.toString(16).padStart(4, '0')}` : `'${c}'`;
}

class Parser {
  private i = 0;

  constructor(private readonly s: string) {}

  parse(): JsonValue {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) this.fail(`unexpected ${show(this.s[this.i])} after the value`);
    return v;
  }

  private fail(what: string, at = this.i): never {
    throw new JsonSyntaxError(`${what} at character ${at}`);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length && WS.has(s.charCodeAt(this.i))) this.i++;
  }

  private value(depth: number): JsonValue {
    const c = this.s[this.i];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.word('true', true);
      case 'f':
        return this.word('false', false);
      case 'n':
        return this.word('null', null);
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(`unexpected ${show(c)}`);
    }
  }

  private word<T>(w: string, v: T): T {
    if (this.s.startsWith(w, this.i)) {
      this.i += w.length;
      return v;
    }
    return this.fail(`unexpected ${show(this.s[this.i])}`);
  }

  private number(): number | OtherNumber {
    NUMBER.lastIndex = this.i;
    const r = NUMBER.exec(this.s);
    if (r === null) return this.fail('malformed number');
    const next = this.s[this.i + r[0].length];
    if (next !== undefined && /[0-9.eE+-]/.test(next)) this.fail('malformed number', this.i + r[0].length);
    this.i += r[0].length;
    const text = r[0];
    const v = Number(text);
    return r[1] === undefined && r[2] === undefined && Number.isSafeInteger(v) && text.length <= 17 ? v : new OtherNumber(text);
  }

  private string(): string {
    const s = this.s;
    const start = this.i;
    this.i++; // "
    let out = '';
    let run = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string', start);
      const code = s.charCodeAt(this.i);
      if (code === 0x22) {
        out += s.slice(run, this.i);
        this.i++;
        return out;
      }
      if (code < 0x20) this.fail(`unescaped control ${show(s[this.i])} in a string`);
      if (code !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(run, this.i);
      const e = s[this.i + 1];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) {
        out += simple[e];
        this.i += 2;
      } else if (e === 'u') {
        const unit = this.hex4(this.i + 2);
        this.i += 6;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          // A high surrogate must be followed by an escaped low one.
          const low = s[this.i] === '\\' && s[this.i + 1] === 'u' ? this.hex4(this.i + 2) : -1;
          if (low < 0xdc00 || low > 0xdfff) this.fail('lone surrogate in a \\u escape', this.i - 6);
          out += String.fromCharCode(unit, low);
          this.i += 6;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          this.fail('lone surrogate in a \\u escape', this.i - 6);
        } else {
          out += String.fromCharCode(unit);
        }
      } else {
        this.fail(`invalid escape ${e === undefined ? 'at the end' : show(e)} in a string`);
      }
      run = this.i;
    }
  }

  private hex4(at: number): number {
    const h = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('invalid \\u escape', at);
    return parseInt(h, 16);
  }

  private enter(depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nested more than ${MAX_DEPTH} levels deep`);
  }

  private array(depth: number): JsonValue[] {
    this.enter(depth);
    this.i++; // [
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') this.fail(`expected ',' or ']', got ${show(c)}`, this.i - 1);
    }
  }

  private object(depth: number): Map<string, JsonValue> {
    this.enter(depth);
    this.i++; // {
    const out = new Map<string, JsonValue>();
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail(`expected a string key, got ${show(this.s[this.i])}`);
      const at = this.i;
      const key = this.string();
      if (out.has(key)) this.fail(`duplicate key ${JSON.stringify(truncate(key, 60))}`, at);
      this.ws();
      if (this.s[this.i] !== ':') this.fail(`expected ':', got ${show(this.s[this.i])}`);
      this.i++;
      this.ws();
      out.set(key, this.value(depth));
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return out;
      if (c !== ',') this.fail(`expected ',' or '}', got ${show(c)}`, this.i - 1);
    }
  }
}

/**
 * Parses JSON text strictly (see the module comment).
 * @throws JsonSyntaxError
 */
export function parseStrictJson(text: string): JsonValue {
  return new Parser(text).parse();
}

/** `s` cut to at most `max` characters, an ellipsis marking the cut. */
export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** A JSON value's kind for messages: 'a string', 'an array', 'a number 2.5'. */
export function kindOf(v: JsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return `${v}`;
  if (v instanceof OtherNumber) return truncate(v.literal, 40);
  if (Array.isArray(v)) return 'an array';
  return 'an object';
}
