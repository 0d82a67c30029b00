'use strict';
// REST API subset under /services/data/v<ver>/: sObject CRUD and upsert, sObject Collections,
// SOQL query with paging, limits. Bearer auth, Salesforce-shaped errors, Sforce-Limit-Info on
// every response, and injectable failures for tests. Every write emits CDC through org.js.

const { readBody, sendJson, bearerToken } = require('./http');
const { SfError, notFound, restRecord, withoutAttributes } = require('./org');
const { compoundValues } = require('./cdc');
const soql = require('./soql');
const { KEY_PREFIXES } = require('./ids');

const MAX_COLLECTION = 200;

// Presets for POST /_test/rest/fail {"kind": ...}.
const FAILURE_KINDS = {
  UNABLE_TO_LOCK_ROW: { status: 400, errorCode: 'UNABLE_TO_LOCK_ROW', message: 'unable to obtain exclusive access to this record' },
  REQUEST_LIMIT_EXCEEDED: { status: 403, errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' },
  SERVER_UNAVAILABLE: { status: 503, errorCode: 'SERVER_UNAVAILABLE', message: 'Server is temporarily unavailable. Please try again later.' },
  FIELD_CUSTOM_VALIDATION_EXCEPTION: { status: 400, errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Rejected by a validation rule' },
};

const rolledBack = () => ({
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
});

class Rest {
  constructor({ state, org, oauth }) {
    this.state = state;
    this.org = org;
    this.oauth = oauth;
    this.failures = []; // injected: {status, errorCode, message, fields, remaining, method, path, perRecord}
    this.cursors = new Map(); // query locator -> {records, version, kind}
    this.cursorCount = 0;
  }

  get data() {
    return this.state.data;
  }

  reset() {
    this.failures = [];
    this.cursors.clear();
  }

  /** Control API: queue a failure for the next `count` matching requests (or records). */
  injectFailure(spec) {
    const preset = FAILURE_KINDS[spec.kind || spec.errorCode] || {};
    const failure = {
      status: spec.status || preset.status || 400,
      errorCode: spec.errorCode || preset.errorCode || spec.kind,
      message: spec.message || preset.message || 'Injected failure',
      fields: spec.fields || [],
      remaining: spec.count === undefined ? 1 : spec.count,
      method: spec.method ? spec.method.toUpperCase() : null,
      path: spec.path || null,
      perRecord: Boolean(spec.perRecord),
    };
    if (!failure.errorCode) throw new Error('kind or errorCode required');
    this.failures.push(failure);
    return failure;
  }

  takeFailure(req, path, perRecord) {
    const f = this.failures.find(
      (x) => x.remaining > 0 && x.perRecord === perRecord && (!x.method || x.method === req.method) && (!x.path || path.includes(x.path)),
    );
    if (!f) return null;
    f.remaining -= 1;
    this.failures = this.failures.filter((x) => x.remaining > 0);
    return new SfError(f.status, f.errorCode, f.message, f.fields);
  }

  limitHeader() {
    return { 'Sforce-Limit-Info': `api-usage=${this.data.apiUsage}/${this.data.config.apiMax}` };
  }

  async handle(req, res, url) {
    const send = (status, body) => sendJson(res, status, body, this.limitHeader());
    if (/^\/services\/data\/?$/.test(url.pathname)) {
      return send(200, ['58.0', '59.0', '60.0', '61.0', '62.0', '63.0', '64.0', '65.0', '66.0'].map((v) => ({
        label: `v${v}`, url: `/services/data/v${v}`, version: v,
      })));
    }
    const m = /^\/services\/data\/v(\d+\.\d+)(\/.*)?$/.exec(url.pathname);
    if (!m) return send(404, notFound().body());
    const version = m[1];
    const path = (m[2] || '/').replace(/\/+$/, '') || '/';

    const auth = this.oauth.validate(bearerToken(req.headers.authorization));
    if (!auth) {
      return sendJson(res, 401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }], {
        ...this.limitHeader(),
        'WWW-Authenticate': 'Token',
      });
    }
    this.data.apiUsage += 1;
    try {
      if (this.data.apiUsage > this.data.config.apiMax) {
        throw new SfError(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.');
      }
      const injected = this.takeFailure(req, path, false);
      if (injected) throw injected;
      const ctx = { req, url, version, path, auth, origin: changeOrigin(req, version) };
      const [status, body] = await this.route(ctx);
      return send(status, body);
    } catch (err) {
      if (err instanceof SfError) return send(err.status, err.body());
      console.error(err);
      return send(500, [{ message: String(err && err.message), errorCode: 'UNKNOWN_EXCEPTION', fields: [] }]);
    }
  }

  async route(ctx) {
    const { req, path } = ctx;
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method;

    if (seg.length === 0 && method === 'GET') return [200, this.resources(ctx.version)];
    if (seg[0] === 'limits' && seg.length === 1 && method === 'GET') return [200, this.limits()];
    if ((seg[0] === 'query' || seg[0] === 'queryAll') && method === 'GET') {
      if (seg.length === 1) return [200, this.query(ctx, seg[0])];
      if (seg.length === 2) return [200, this.nextPage(seg[1])];
    }
    if (seg[0] === 'sobjects' && seg.length === 1 && method === 'GET') return [200, this.describeGlobal()];
    if (seg[0] === 'sobjects' && seg.length >= 2) {
      const type = seg[1];
      if (seg.length === 2 && method === 'POST') return this.create(ctx, type, await jsonBody(req));
      if (seg.length === 3 && seg[2] === 'describe' && method === 'GET') return [200, this.describe(type)];
      if (seg.length === 3) {
        const id = seg[2];
        if (method === 'GET') return [200, this.get(ctx, type, id)];
        if (method === 'PATCH') return this.update(ctx, type, id, await jsonBody(req));
        if (method === 'DELETE') return this.remove(ctx, type, id);
      }
      if (seg.length === 4) {
        if (method === 'PATCH') return this.upsert(ctx, type, seg[2], seg[3], await jsonBody(req));
        if (method === 'GET') return this.getByExternalId(ctx, type, seg[2], seg[3]);
      }
    }
    if (seg[0] === 'composite' && seg[1] === 'sobjects') {
      if (seg.length === 2 && method === 'POST') return [200, this.collectionCreate(ctx, await jsonBody(req))];
      if (seg.length === 2 && method === 'PATCH') return [200, this.collectionUpdate(ctx, await jsonBody(req))];
      if (seg.length === 2 && method === 'DELETE') return [200, this.collectionDelete(ctx)];
      if (seg.length === 3 && method === 'GET') return [200, this.collectionRetrieve(ctx, seg[2])];
      if (seg.length === 4 && method === 'PATCH') return [200, this.collectionUpsert(ctx, seg[2], seg[3], await jsonBody(req))];
    }
    throw notFound();
  }

  resources(version) {
    const v = `/services/data/v${version}`;
    return {
      limits: `${v}/limits`,
      query: `${v}/query`,
      queryAll: `${v}/queryAll`,
      sobjects: `${v}/sobjects`,
      composite: `${v}/composite`,
    };
  }

  limits() {
    const d = this.data;
    const c = d.config;
    return {
      DailyApiRequests: { Max: c.apiMax, Remaining: Math.max(0, c.apiMax - d.apiUsage) },
      DailyDeliveredPlatformEvents: { Max: c.deliveryMax, Remaining: Math.max(0, c.deliveryMax - d.deliveredEvents) },
      DailyStreamingApiEvents: { Max: 10000, Remaining: 10000 },
      DailyBulkApiBatches: { Max: 15000, Remaining: 15000 },
    };
  }

  // ---- single records --------------------------------------------------------------------

  get(ctx, type, id) {
    if (!this.org.isKnownType(type)) throw notFound();
    const rec = this.org.live(type, id);
    const fields = ctx.url.searchParams.get('fields');
    return restRecord(type, rec, ctx.version, fields ? fields.split(',').map((f) => f.trim()).filter(Boolean) : null);
  }

  /** Record-scope checks every write shares: injected per-record failures. */
  recordFailure(ctx) {
    const f = this.takeFailure(ctx.req, ctx.path, true);
    if (f) throw f;
  }

  create(ctx, type, body) {
    this.org.writableType(type);
    if (body && 'Id' in body) {
      throw new SfError(400, 'INVALID_FIELD_FOR_INSERT_UPDATE', 'Unable to create/update fields: Id.', ['Id']);
    }
    this.org.validateFields(type, body, true);
    this.recordFailure(ctx);
    const txn = this.org.begin(ctx.auth.userId, ctx.origin);
    const id = txn.create(type, body);
    txn.commit();
    return [201, { id, success: true, errors: [] }];
  }

  update(ctx, type, id, body) {
    this.org.writableType(type);
    this.org.live(type, id);
    this.org.validateFields(type, body, false);
    this.recordFailure(ctx);
    const txn = this.org.begin(ctx.auth.userId, ctx.origin);
    txn.update(type, id, body);
    txn.commit();
    return [204, undefined];
  }

  remove(ctx, type, id) {
    this.org.writableType(type);
    this.org.live(type, id);
    this.recordFailure(ctx);
    const txn = this.org.begin(ctx.auth.userId, ctx.origin);
    txn.remove(type, id);
    txn.commit();
    return [204, undefined];
  }

  /** PATCH sobjects/<Type>/<ExtField>/<value>: 201 created, 200 updated, 300 ambiguous. */
  upsert(ctx, type, field, value, body) {
    this.org.writableType(type);
    this.org.externalIdField(type, field);
    const matches = this.org.findBy(type, field, value);
    if (matches.length > 1) return [300, matches.map((r) => `/services/data/v${ctx.version}/sobjects/${type}/${r.Id}`)];
    const fields = { ...body };
    delete fields[field];
    if (matches.length === 0) {
      if (ctx.url.searchParams.get('updateOnly') === 'true') throw notFound();
      const values = { ...fields, [field]: value };
      this.org.validateFields(type, values, true);
      this.recordFailure(ctx);
      const txn = this.org.begin(ctx.auth.userId, ctx.origin);
      const id = txn.create(type, values);
      txn.commit();
      return [201, { id, success: true, errors: [], created: true }];
    }
    this.org.validateFields(type, fields, false);
    this.recordFailure(ctx);
    const txn = this.org.begin(ctx.auth.userId, ctx.origin);
    const id = txn.update(type, matches[0].Id, fields);
    txn.commit();
    return [200, { id, success: true, errors: [], created: false }];
  }

  getByExternalId(ctx, type, field, value) {
    if (!this.org.isKnownType(type)) throw notFound();
    const matches = this.org.findBy(type, field, value);
    if (matches.length === 0) throw notFound();
    if (matches.length > 1) return [300, matches.map((r) => `/services/data/v${ctx.version}/sobjects/${type}/${r.Id}`)];
    return [200, restRecord(type, matches[0], ctx.version, null)];
  }

  describeGlobal() {
    const custom = Object.entries(this.data.customPrefixes);
    return {
      encoding: 'UTF-8',
      maxBatchSize: MAX_COLLECTION,
      sobjects: [...Object.entries(KEY_PREFIXES), ...custom].map(([name, keyPrefix]) => ({
        name,
        keyPrefix,
        custom: name.endsWith('__c'),
      })),
    };
  }

  describe(type) {
    if (!this.org.isKnownType(type)) throw notFound();
    // Every sObject has its system fields, whatever records exist yet.
    const names = new Set([...SYSTEM_FIELDS, ...(this.data.config.fields[type] || [])]);
    for (const r of this.org.rows(type, true)) for (const k of Object.keys(r)) names.add(k);
    return { name: type, custom: type.endsWith('__c'), fields: [...names].map((name) => ({ name })) };
  }

  // ---- sObject Collections ----------------------------------------------------------------

  /**
   * Two phases so allOrNone can roll back without undo logic: plan every record (validation
   * only, returns an apply function or an error), then apply the valid ones in one transaction.
   */
  runCollection(ctx, body, planOne) {
    const records = body && Array.isArray(body.records) ? body.records : null;
    if (!records) throw new SfError(400, 'JSON_PARSER_ERROR', 'records is required');
    if (records.length > MAX_COLLECTION) {
      throw new SfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 200 records into this call');
    }
    const plans = records.map((r, i) => {
      try {
        const plan = planOne(r, i, records);
        this.recordFailure(ctx);
        return plan;
      } catch (err) {
        if (!(err instanceof SfError)) throw err;
        return { id: r && r.Id, error: err };
      }
    });
    return this.finishCollection(ctx, plans, Boolean(body.allOrNone));
  }

  finishCollection(ctx, plans, allOrNone) {
    const failed = plans.some((p) => p.error);
    const withId = (p, rest) => (p.id ? { id: p.id, ...rest } : rest);
    if (allOrNone && failed) {
      return plans.map((p) => withId(p, { success: false, errors: [p.error ? p.error.recordError() : rolledBack()] }));
    }
    const txn = this.org.begin(ctx.auth.userId, ctx.origin);
    const results = plans.map((p) => {
      if (p.error) return withId(p, { success: false, errors: [p.error.recordError()] });
      const id = p.apply(txn);
      return { id, success: true, errors: [], ...(p.created === undefined ? {} : { created: p.created }) };
    });
    txn.commit();
    return results;
  }

  collectionCreate(ctx, body) {
    return this.runCollection(ctx, body, (r) => {
      const type = r && r.attributes && r.attributes.type;
      if (!type) throw new SfError(400, 'INVALID_TYPE', 'Must specify a type in the attributes of each record');
      this.org.writableType(type);
      if ('Id' in r) throw new SfError(400, 'INVALID_FIELD_FOR_INSERT_UPDATE', 'cannot specify Id in an insert call', ['Id']);
      this.org.validateFields(type, r, true);
      return { apply: (txn) => txn.create(type, r) };
    });
  }

  collectionUpdate(ctx, body) {
    return this.runCollection(ctx, body, (r) => {
      const type = r && r.attributes && r.attributes.type;
      if (!type) throw new SfError(400, 'INVALID_TYPE', 'Must specify a type in the attributes of each record');
      this.org.writableType(type);
      if (!r.Id) throw new SfError(400, 'MISSING_ARGUMENT', 'Id not specified in an update call', ['Id']);
      const rec = this.org.find(type, r.Id);
      if (!rec) throw new SfError(400, 'INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id');
      if (rec.IsDeleted) throw new SfError(400, 'ENTITY_IS_DELETED', 'entity is deleted');
      const { Id, ...fields } = r;
      this.org.validateFields(type, fields, false);
      return { id: rec.Id, apply: (txn) => txn.update(type, Id, fields) };
    });
  }

  collectionUpsert(ctx, type, field, body) {
    this.org.writableType(type);
    this.org.externalIdField(type, field);
    const seen = new Map();
    return this.runCollection(ctx, body, (r) => {
      if (!r || (r.attributes && r.attributes.type && r.attributes.type !== type)) {
        throw new SfError(400, 'INVALID_TYPE', `Record type must be ${type}`);
      }
      const value = r[field];
      if (value === undefined || value === null || value === '') {
        throw new SfError(400, 'MISSING_ARGUMENT', `${field} not specified`, [field]);
      }
      const key = String(value).toLowerCase();
      if (seen.has(key)) throw new SfError(400, 'DUPLICATE_EXTERNAL_ID', `Duplicate external id specified: ${value}`, [field]);
      seen.set(key, true);
      const matches = this.org.findBy(type, field, value);
      if (matches.length > 1) throw new SfError(300, 'DUPLICATE_EXTERNAL_ID', `${field}: more than one record found for external id field: ${value}`, [field]);
      const fields = withoutAttributes(r);
      if (matches.length === 0) {
        this.org.validateFields(type, fields, true);
        return { created: true, apply: (txn) => txn.create(type, fields) };
      }
      const update = { ...fields };
      delete update[field];
      this.org.validateFields(type, update, false);
      return { id: matches[0].Id, created: false, apply: (txn) => txn.update(type, matches[0].Id, update) };
    });
  }

  collectionDelete(ctx) {
    const ids = (ctx.url.searchParams.get('ids') || '').split(',').filter(Boolean);
    if (ids.length > MAX_COLLECTION) {
      throw new SfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 200 records into this call');
    }
    const plans = ids.map((id) => {
      try {
        const type = this.org.typeOfId(id);
        const rec = type && this.org.find(type, id);
        if (!rec) throw new SfError(400, 'INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id');
        if (rec.IsDeleted) throw new SfError(400, 'ENTITY_IS_DELETED', 'entity is deleted');
        this.recordFailure(ctx);
        return { id: rec.Id, apply: (txn) => txn.remove(type, rec.Id) };
      } catch (err) {
        if (!(err instanceof SfError)) throw err;
        return { id, error: err };
      }
    });
    return this.finishCollection(ctx, plans, ctx.url.searchParams.get('allOrNone') === 'true');
  }

  collectionRetrieve(ctx, type) {
    if (!this.org.isKnownType(type)) throw notFound();
    const ids = (ctx.url.searchParams.get('ids') || '').split(',').filter(Boolean);
    const fields = (ctx.url.searchParams.get('fields') || '').split(',').map((f) => f.trim()).filter(Boolean);
    return ids.map((id) => {
      const rec = this.org.find(type, id);
      return rec && !rec.IsDeleted ? restRecord(type, rec, ctx.version, fields.length ? fields : null) : null;
    });
  }

  // ---- SOQL ----------------------------------------------------------------------------

  query(ctx, kind) {
    const q = ctx.url.searchParams.get('q');
    if (!q) throw new SfError(400, 'MALFORMED_QUERY', 'A query string is required');
    let parsed;
    try {
      parsed = soql.parse(q);
    } catch (err) {
      if (err instanceof soql.SoqlError) throw new SfError(400, 'MALFORMED_QUERY', err.message);
      throw err;
    }
    const type = canonicalType(this.org, parsed.type);
    if (!type) throw new SfError(400, 'INVALID_TYPE', `sObject type '${parsed.type}' is not supported.`);
    const get = (rec, field) => this.fieldValue(type, rec, field);
    const rows = soql.run(parsed, this.org.rows(type, kind === 'queryAll'), get);
    if (parsed.count) return { totalSize: rows.length, done: true, records: [] };
    const records = rows.map((rec) => this.shape(type, rec, parsed.fields, ctx.version));
    const batch = /batchSize=(\d+)/.exec(ctx.req.headers['sforce-query-options'] || '');
    const pageSize = batch ? Number(batch[1]) : this.data.config.queryPageSize;
    if (records.length <= pageSize) return { totalSize: records.length, done: true, records };
    const locator = `01gxx${String(++this.cursorCount).padStart(10, '0')}AAA`;
    this.cursors.set(locator, { records, version: ctx.version, kind, pageSize });
    return this.page(locator, 0);
  }

  nextPage(locatorAndOffset) {
    const m = /^(.+)-(\d+)$/.exec(locatorAndOffset);
    if (!m || !this.cursors.has(m[1])) throw new SfError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    return this.page(m[1], Number(m[2]));
  }

  page(locator, offset) {
    const { records, version, kind, pageSize } = this.cursors.get(locator);
    const end = offset + pageSize;
    const out = { totalSize: records.length, done: end >= records.length };
    if (!out.done) out.nextRecordsUrl = `/services/data/v${version}/${kind}/${locator}-${end}`;
    out.records = records.slice(offset, end);
    return out;
  }

  /** Field value for SOQL, resolving `Rel.Field` through <Rel>Id / <Rel>__c lookups. */
  fieldValue(type, rec, field) {
    if (!rec) return null;
    const dot = field.indexOf('.');
    if (dot < 0) {
      const full = { ...rec, ...compoundValues(type, rec) };
      const key = Object.keys(full).find((k) => k.toLowerCase() === field.toLowerCase());
      return key === undefined ? null : full[key];
    }
    const { relType, related } = this.related(type, rec, field.slice(0, dot));
    return related ? this.fieldValue(relType, related, field.slice(dot + 1)) : null;
  }

  related(type, rec, rel) {
    const idField = rel.endsWith('__r') ? `${rel.slice(0, -3)}__c` : `${rel}Id`;
    const id = this.fieldValue(type, rec, idField);
    const relType = id && this.org.typeOfId(id);
    return { relType, related: relType ? this.org.find(relType, id) : null };
  }

  /** Query record shape: attributes + selected fields (canonical names), relationships nested. */
  shape(type, rec, fields, version) {
    const out = { attributes: { type, url: `/services/data/v${version}/sobjects/${type}/${rec.Id}` } };
    const full = { ...rec, ...compoundValues(type, rec) };
    for (const field of fields) {
      const dot = field.indexOf('.');
      if (dot < 0) {
        const key = Object.keys(full).find((k) => k.toLowerCase() === field.toLowerCase()) || field;
        out[key] = full[key] === undefined ? null : full[key];
        continue;
      }
      const rel = field.slice(0, dot);
      const { relType, related } = this.related(type, rec, rel);
      if (!related) {
        if (!(rel in out)) out[rel] = null;
        continue;
      }
      const nested = this.shape(relType, related, [field.slice(dot + 1)], version);
      out[rel] = out[rel] ? { ...out[rel], ...nested } : nested;
    }
    return out;
  }
}

function canonicalType(org, name) {
  if (org.isKnownType(name)) return name;
  return Object.keys(KEY_PREFIXES).find((t) => t.toLowerCase() === name.toLowerCase()) || null;
}

async function jsonBody(req) {
  const text = await readBody(req);
  try {
    return text.trim() ? JSON.parse(text) : {};
  } catch (err) {
    throw new SfError(400, 'JSON_PARSER_ERROR', `Unexpected character: ${err.message}`);
  }
}

const SYSTEM_FIELDS = ['Id', 'IsDeleted', 'CreatedDate', 'CreatedById', 'LastModifiedDate', 'LastModifiedById', 'SystemModstamp'];

/** changeOrigin of CDC events caused by this REST call (client= from Sforce-Call-Options). */
function changeOrigin(req, version) {
  const options = req.headers['sforce-call-options'] || '';
  const m = /(?:^|,)\s*client=([^,]*)/.exec(options);
  const client = m ? m[1].trim() : '';
  return `com/salesforce/api/rest/${version}` + (client ? `;client=${client}` : '');
}

module.exports = { Rest, FAILURE_KINDS, changeOrigin };
