'use strict';
// A deliberately small SOQL subset:
//   SELECT f1, f2, Rel.Field | COUNT() FROM Type
//   [WHERE cond (AND|OR cond)*]        cond: f (=|!=|<>|<|<=|>|>=) value | f [NOT] IN (v, ...) | f LIKE 'p%'
//   [ORDER BY f [ASC|DESC] (, f [ASC|DESC])*] [LIMIT n] [OFFSET n]
// AND binds tighter than OR; no parentheses. Values: 'strings', numbers, true/false/null and
// bare date/datetime literals. String comparison is case-insensitive, as in SOQL.

class SoqlError extends Error {}

function tokenize(q) {
  const tokens = [];
  const re = /\s*(?:'((?:\\.|[^'\\])*)'|(<=|>=|!=|<>|[(),=<>])|([^\s(),=<>!']+))/gy;
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < q.length) {
    const start = re.lastIndex;
    m = re.exec(q);
    if (!m) {
      if (/^\s*$/.test(q.slice(start))) break;
      throw new SoqlError(`unexpected character at ${start}`);
    }
    if (m[1] !== undefined) tokens.push({ kind: 'str', value: m[1].replace(/\\(.)/g, '$1') });
    else if (m[2] !== undefined) tokens.push({ kind: 'op', value: m[2] });
    else if (m[3] !== undefined) tokens.push({ kind: 'word', value: m[3] });
    else break;
  }
  return tokens;
}

function parse(q) {
  const t = tokenize(q);
  let i = 0;
  const peek = () => t[i];
  const isWord = (w) => t[i] && t[i].kind === 'word' && t[i].value.toUpperCase() === w;
  const expectWord = (w) => {
    if (!isWord(w)) throw new SoqlError(`expected ${w}`);
    i++;
  };
  const expectOp = (op) => {
    if (!t[i] || t[i].kind !== 'op' || t[i].value !== op) throw new SoqlError(`expected '${op}'`);
    i++;
  };
  const ident = () => {
    const tok = t[i++];
    if (!tok || tok.kind !== 'word') throw new SoqlError('expected a field name');
    return tok.value;
  };
  const value = () => {
    const tok = t[i++];
    if (!tok) throw new SoqlError('expected a value');
    if (tok.kind === 'str') return tok.value;
    if (tok.kind !== 'word') throw new SoqlError(`unexpected '${tok.value}'`);
    const w = tok.value;
    if (/^-?\d+(\.\d+)?$/.test(w)) return Number(w);
    if (/^true$/i.test(w)) return true;
    if (/^false$/i.test(w)) return false;
    if (/^null$/i.test(w)) return null;
    return w; // date / datetime literal
  };

  expectWord('SELECT');
  const fields = [];
  let count = false;
  for (;;) {
    if (isWord('COUNT') && t[i + 1] && t[i + 1].value === '(') {
      i += 2;
      expectOp(')');
      count = true;
    } else {
      fields.push(ident());
    }
    if (peek() && peek().value === ',') {
      i++;
      continue;
    }
    break;
  }
  expectWord('FROM');
  const type = ident();

  const where = []; // OR of ANDs
  if (isWord('WHERE')) {
    i++;
    let group = [];
    for (;;) {
      const field = ident();
      let cond;
      if (isWord('NOT') || isWord('IN')) {
        const negate = isWord('NOT');
        if (negate) i++;
        expectWord('IN');
        expectOp('(');
        const values = [value()];
        while (peek() && peek().value === ',') {
          i++;
          values.push(value());
        }
        expectOp(')');
        cond = { field, op: negate ? 'NOT IN' : 'IN', value: values };
      } else if (isWord('LIKE')) {
        i++;
        cond = { field, op: 'LIKE', value: value() };
      } else {
        const op = peek();
        if (!op || op.kind !== 'op' || !['=', '!=', '<>', '<', '<=', '>', '>='].includes(op.value)) {
          throw new SoqlError(`expected an operator after ${field}`);
        }
        i++;
        cond = { field, op: op.value === '<>' ? '!=' : op.value, value: value() };
      }
      group.push(cond);
      if (isWord('AND')) {
        i++;
        continue;
      }
      if (isWord('OR')) {
        i++;
        where.push(group);
        group = [];
        continue;
      }
      where.push(group);
      break;
    }
  }

  const orderBy = [];
  if (isWord('ORDER')) {
    i++;
    expectWord('BY');
    for (;;) {
      const key = { field: ident(), desc: false };
      if (isWord('ASC')) i++;
      else if (isWord('DESC')) {
        i++;
        key.desc = true;
      }
      orderBy.push(key);
      if (!(t[i] && t[i].kind === 'op' && t[i].value === ',')) break;
      i++;
    }
  }
  let limit = null;
  let offset = 0;
  if (isWord('LIMIT')) {
    i++;
    limit = value();
    if (!Number.isInteger(limit) || limit < 0) throw new SoqlError('LIMIT must be a non-negative integer');
  }
  if (isWord('OFFSET')) {
    i++;
    offset = value();
    if (!Number.isInteger(offset) || offset < 0) throw new SoqlError('OFFSET must be a non-negative integer');
  }
  if (i < t.length) throw new SoqlError(`unexpected token '${t[i].value}'`);
  return { fields, count, type, where, orderBy, limit, offset };
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Normalise for comparison: strings case-insensitive, ISO datetimes as epoch ms. */
function norm(v) {
  if (v === undefined) return null;
  if (typeof v === 'string') return ISO_DATE.test(v) ? Date.parse(v) : v.toLowerCase();
  return v;
}

function compare(a, op, b) {
  const x = norm(a);
  switch (op) {
    case '=':
      return x === norm(b);
    case '!=':
      return x !== norm(b);
    case 'IN':
      return b.some((v) => x === norm(v));
    case 'NOT IN':
      return !b.some((v) => x === norm(v));
    case 'LIKE': {
      if (typeof a !== 'string') return false;
      const rx = String(b).replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.');
      return new RegExp(`^${rx}$`, 'is').test(a);
    }
    default: {
      const y = norm(b);
      if (x === null || y === null) return false;
      if (op === '<') return x < y;
      if (op === '<=') return x <= y;
      if (op === '>') return x > y;
      return x >= y;
    }
  }
}

/**
 * Run a parsed query over `records` (array). `get(record, field)` resolves a (possibly dotted)
 * field. Returns the matching records, ordered and limited.
 */
function run(query, records, get) {
  let rows = records.filter((r) =>
    query.where.length === 0 || query.where.some((group) => group.every((c) => compare(get(r, c.field), c.op, c.value))),
  );
  if (query.orderBy.length > 0) {
    rows = [...rows].sort((a, b) => {
      for (const { field, desc } of query.orderBy) {
        const x = norm(get(a, field));
        const y = norm(get(b, field));
        if (x === y) continue;
        if (x === null) return desc ? 1 : -1; // nulls first ascending, as SOQL
        if (y === null) return desc ? -1 : 1;
        return (x < y ? -1 : 1) * (desc ? -1 : 1);
      }
      return 0;
    });
  }
  rows = rows.slice(query.offset);
  if (query.limit !== null) rows = rows.slice(0, query.limit);
  return rows;
}

module.exports = { parse, run, SoqlError };
