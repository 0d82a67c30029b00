'use strict';
// The org's records and the one place where writes happen. Every write goes through a
// transaction (Txn) so that one API call = one CDC transaction: one transactionKey, one commit
// timestamp/number, sequenceNumbers 1..n in write order.

const crypto = require('node:crypto');
const { newId, keyPrefix, to18, typeOfId, isCustomType, KEY_PREFIXES } = require('./ids');
const { cdcBody, changedFieldName, compoundNames, compoundValues } = require('./cdc');

/** A Salesforce-shaped API error: HTTP status + [{message, errorCode, fields}]. */
class SfError extends Error {
  constructor(status, errorCode, message, fields = []) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
    this.fields = fields;
  }

  /** Top-level REST error body. */
  body() {
    return [{ message: this.message, errorCode: this.errorCode, fields: this.fields }];
  }

  /** Per-record error inside sObject Collections results (note: statusCode, not errorCode). */
  recordError() {
    return { statusCode: this.errorCode, message: this.message, fields: this.fields };
  }
}

const notFound = () => new SfError(404, 'NOT_FOUND', 'The requested resource does not exist');

// Not writable through the API; they are maintained by the "platform".
const SYSTEM_FIELDS = ['Id', 'CreatedDate', 'CreatedById', 'LastModifiedDate', 'LastModifiedById', 'SystemModstamp', 'IsDeleted'];
// Excluded from CDC bodies, as on Salesforce.
const NOT_IN_CDC = ['Id', 'IsDeleted', 'SystemModstamp'];
// Types synthesised from configuration; readable, not writable.
const READ_ONLY_TYPES = ['User', 'Organization'];

/** Salesforce stores datetimes to the second: 2025-06-02T14:05:11.000Z. */
function isoSeconds(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

function isEmpty(v) {
  return v === null || v === undefined || v === '';
}

/** A collection record minus its `attributes` ({type}) entry. */
function withoutAttributes(fields) {
  const values = { ...fields };
  delete values.attributes;
  return values;
}

function sameValue(a, b) {
  return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b);
}

class Org {
  /**
   * @param {import('./state').State} state
   * @param {import('./cdc').Bus} bus
   */
  constructor(state, bus) {
    this.state = state;
    this.bus = bus;
  }

  get data() {
    return this.state.data;
  }

  isKnownType(type) {
    return Boolean(KEY_PREFIXES[type]) || isCustomType(type);
  }

  /** Throws unless `type` can be written through the API. */
  writableType(type) {
    if (!this.isKnownType(type)) throw notFound();
    if (READ_ONLY_TYPES.includes(type)) {
      throw new SfError(400, 'INVALID_TYPE_FOR_OPERATION', `entity type ${type} does not support this operation`);
    }
  }

  table(type) {
    keyPrefix(this.data, type); // allocate custom prefixes early so ids resolve to their type
    if (!this.data.records[type]) this.data.records[type] = {};
    return this.data.records[type];
  }

  /** All records of a type (deleted ones only when asked), in creation order. */
  rows(type, includeDeleted = false) {
    if (type === 'Organization') return [this.organization()];
    if (type === 'User') return this.data.users.map((u) => this.userRecord(u));
    return Object.values(this.table(type)).filter((r) => includeDeleted || !r.IsDeleted);
  }

  organization() {
    const c = this.data.config;
    return {
      Id: c.orgId,
      Name: c.orgName,
      IsSandbox: c.isSandbox,
      OrganizationType: c.organizationType,
      InstanceName: c.instanceName,
    };
  }

  userRecord(u) {
    return { Id: u.id, Username: u.username, Name: u.name, Email: u.email, IsActive: true };
  }

  /** Record by type and (15/18-char) id, deleted or not; null when absent. */
  find(type, id) {
    const id18 = to18(id);
    if (!id18) return null;
    if (READ_ONLY_TYPES.includes(type)) return this.rows(type).find((r) => r.Id === id18) || null;
    return this.table(type)[id18] || null;
  }

  /** Live record or a 404 (NOT_FOUND / ENTITY_IS_DELETED) as Salesforce answers. */
  live(type, id) {
    const rec = this.find(type, id);
    if (!rec) throw notFound();
    if (rec.IsDeleted) throw new SfError(404, 'ENTITY_IS_DELETED', 'entity is deleted');
    return rec;
  }

  typeOfId(id) {
    const id18 = to18(id);
    return id18 ? typeOfId(this.data, id18) : null;
  }

  /** Live records whose `field` equals `value` (external ids: case-insensitive for text). */
  findBy(type, field, value) {
    const norm = (v) => (typeof v === 'string' ? v.toLowerCase() : v);
    return this.rows(type).filter((r) => r[field] !== undefined && norm(r[field]) === norm(value));
  }

  /** Field-level checks shared by create, update and upsert. */
  validateFields(type, fields, creating) {
    if (!fields || typeof fields !== 'object' || Array.isArray(fields)) {
      throw new SfError(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object');
    }
    const names = Object.keys(fields).filter((k) => k !== 'attributes');
    const readOnly = names.filter((k) => SYSTEM_FIELDS.includes(k) || compoundNames(type).includes(k));
    if (readOnly.length) {
      throw new SfError(400, 'INVALID_FIELD_FOR_INSERT_UPDATE', `Unable to create/update fields: ${readOnly.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`, readOnly);
    }
    const allowed = this.data.config.fields[type];
    if (allowed) {
      const unknown = names.find((k) => !allowed.includes(k));
      if (unknown) throw new SfError(400, 'INVALID_FIELD', `No such column '${unknown}' on sobject of type ${type}`, [unknown]);
    }
    const required = this.data.config.requiredFields[type] || [];
    const missing = required.filter((f) => (creating ? isEmpty(fields[f]) : f in fields && isEmpty(fields[f])));
    if (missing.length) {
      throw new SfError(400, 'REQUIRED_FIELD_MISSING', `Required fields are missing: [${missing.join(', ')}]`, missing);
    }
  }

  /** Throws unless `field` may be used as an external id of `type`. */
  externalIdField(type, field) {
    const configured = this.data.config.externalIdFields[type];
    const ok = configured ? configured.includes(field) : field.endsWith('__c');
    if (!ok) {
      throw new SfError(404, 'NOT_FOUND', `Provided external ID field does not exist or is not accessible: ${field}`);
    }
  }

  begin(userId, changeOrigin) {
    return new Txn(this, userId, changeOrigin);
  }
}

class Txn {
  constructor(org, userId, changeOrigin) {
    this.org = org;
    this.userId = userId;
    this.changeOrigin = changeOrigin;
    this.ms = Date.now();
    this.now = isoSeconds(this.ms);
    this.changes = [];
  }

  /** Insert a validated record; returns its id. */
  create(type, fields) {
    const data = this.org.data;
    const id = newId(data, type);
    const values = withoutAttributes(fields);
    const rec = {
      Id: id,
      ...values,
      OwnerId: values.OwnerId || this.userId,
      CreatedDate: this.now,
      CreatedById: this.userId,
      LastModifiedDate: this.now,
      LastModifiedById: this.userId,
      SystemModstamp: this.now,
      IsDeleted: false,
    };
    this.org.table(type)[id] = rec;
    const pairs = Object.entries(rec).filter(([k, v]) => !NOT_IN_CDC.includes(k) && !isEmpty(v));
    this.changes.push({ type, changeType: 'CREATE', id, body: cdcBody(type, pairs), changedFields: [] });
    return id;
  }

  /** Update a live, validated record. CDC: changed fields only, plus LastModifiedDate. */
  update(type, id, fields) {
    const rec = this.org.live(type, id);
    const values = withoutAttributes(fields);
    const changed = Object.keys(values).filter((k) => !sameValue(rec[k], values[k]));
    Object.assign(rec, values);
    const modifierChanged = rec.LastModifiedById !== this.userId;
    rec.LastModifiedDate = this.now;
    rec.LastModifiedById = this.userId;
    rec.SystemModstamp = this.now;
    const pairs = changed.map((k) => [k, values[k] === undefined ? null : values[k]]);
    pairs.push(['LastModifiedDate', this.now]);
    if (modifierChanged) pairs.push(['LastModifiedById', this.userId]);
    this.changes.push({
      type,
      changeType: 'UPDATE',
      id: rec.Id,
      body: cdcBody(type, pairs),
      changedFields: pairs.map(([k]) => changedFieldName(type, k)),
    });
    return rec.Id;
  }

  /** Soft delete (to the recycle bin: queryAll still sees it). CDC: header only. */
  remove(type, id) {
    const rec = this.org.live(type, id);
    rec.IsDeleted = true;
    rec.LastModifiedDate = this.now;
    rec.LastModifiedById = this.userId;
    rec.SystemModstamp = this.now;
    this.changes.push({ type, changeType: 'DELETE', id: rec.Id, body: {}, changedFields: [] });
    return rec.Id;
  }

  /**
   * Publish the transaction's CDC events. sequenceNumber counts every change, so entities not
   * selected for CDC leave gaps, as documented.
   */
  commit() {
    if (this.changes.length === 0) return [];
    const data = this.org.data;
    const transactionKey = crypto.randomUUID();
    data.commitNumber += 1;
    const published = [];
    this.changes.forEach((c, i) => {
      if (!this.org.bus.isEnabled(c.type)) return;
      const payload = {
        ChangeEventHeader: {
          entityName: c.type,
          recordIds: [c.id],
          changeType: c.changeType,
          changeOrigin: this.changeOrigin,
          transactionKey,
          sequenceNumber: i + 1,
          commitTimestamp: this.ms,
          commitNumber: data.commitNumber,
          commitUser: this.userId,
          changedFields: c.changedFields,
        },
        ...c.body,
      };
      published.push(this.org.bus.publish(payload));
    });
    this.changes = [];
    return published;
  }
}

/** REST read shape of a record: attributes + requested (or all) fields, compounds derived. */
function restRecord(type, rec, version, fields) {
  const full = { ...rec, ...compoundValues(type, rec) };
  const out = { attributes: { type, url: `/services/data/v${version}/sobjects/${type}/${rec.Id}` } };
  if (fields) {
    for (const f of fields) {
      const key = Object.keys(full).find((k) => k.toLowerCase() === f.toLowerCase()) || f;
      out[key] = full[key] === undefined ? null : full[key];
    }
  } else {
    Object.assign(out, full);
  }
  return out;
}

module.exports = { Org, Txn, SfError, notFound, restRecord, isoSeconds, withoutAttributes };
