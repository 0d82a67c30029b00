'use strict';
// Change Data Capture: how record changes become CDC payloads (compound fields nested, header
// filled), and the event bus: per-channel retained events with their own replay id sequence.

const crypto = require('node:crypto');

const ALL_CHANNEL = '/data/ChangeEvents';

const ADDRESS_PARTS = [
  'Street', 'City', 'State', 'PostalCode', 'Country', 'StateCode', 'CountryCode',
  'Latitude', 'Longitude', 'GeocodeAccuracy',
];
const NAME_PARTS = ['Salutation', 'FirstName', 'LastName', 'MiddleName', 'Suffix'];

// Compound fields per entity: [compound name, prefix of the flat sObject fields, parts].
// REST writes use the flat names (BillingCity); CDC nests them (BillingAddress.City).
const COMPOUNDS = {
  Account: [['BillingAddress', 'Billing', ADDRESS_PARTS], ['ShippingAddress', 'Shipping', ADDRESS_PARTS]],
  Contact: [
    ['MailingAddress', 'Mailing', ADDRESS_PARTS],
    ['OtherAddress', 'Other', ADDRESS_PARTS],
    ['Name', '', NAME_PARTS],
  ],
  Lead: [['Address', '', ADDRESS_PARTS], ['Name', '', NAME_PARTS]],
  User: [['Address', '', ADDRESS_PARTS], ['Name', '', NAME_PARTS]],
};

/** Flat field -> {compound, part} when it belongs to a compound field of the entity. */
function compoundOf(entity, field) {
  for (const [compound, prefix, parts] of COMPOUNDS[entity] || []) {
    if (!field.startsWith(prefix)) continue;
    const part = field.slice(prefix.length);
    if (parts.includes(part)) return { compound, part };
  }
  return null;
}

function compoundNames(entity) {
  return (COMPOUNDS[entity] || []).map(([name]) => name);
}

/** REST read shape of the compounds of a record: addresses as lower-camel objects, Name as text. */
function compoundValues(entity, record) {
  const out = {};
  for (const [compound, prefix, parts] of COMPOUNDS[entity] || []) {
    if (parts === NAME_PARTS) {
      const text = ['FirstName', 'LastName'].map((p) => record[p]).filter((v) => v).join(' ');
      out[compound] = text || null;
      continue;
    }
    const value = {};
    let any = false;
    for (const part of parts) {
      const v = record[prefix + part];
      value[part[0].toLowerCase() + part.slice(1)] = v === undefined ? null : v;
      if (v !== undefined && v !== null) any = true;
    }
    out[compound] = any ? value : null;
  }
  return out;
}

/** Build a CDC body from [field, value] pairs, nesting compound parts. */
function cdcBody(entity, pairs) {
  const body = {};
  for (const [field, value] of pairs) {
    const c = compoundOf(entity, field);
    if (c) {
      body[c.compound] = body[c.compound] || {};
      body[c.compound][c.part] = value;
    } else {
      body[field] = value;
    }
  }
  return body;
}

/** changedFields entry for a flat field: BillingCity -> BillingAddress.City. */
function changedFieldName(entity, field) {
  const c = compoundOf(entity, field);
  return c ? `${c.compound}.${c.part}` : field;
}

function channelForEntity(entity) {
  return entity.endsWith('__c')
    ? `/data/${entity.slice(0, -3)}__ChangeEvent`
    : `/data/${entity}ChangeEvent`;
}

/** Stable fake Avro schema fingerprint per entity (22 chars like the real ones). */
function schemaId(entity) {
  return crypto.createHash('sha256').update(entity).digest('base64url').slice(0, 22);
}

class Bus {
  /**
   * @param {import('./state').State} state
   */
  constructor(state) {
    this.state = state;
    // Set by the CometD module: called for each (channel, message) to deliver.
    this.onEvent = () => {};
  }

  get data() {
    return this.state.data;
  }

  channelExists(name) {
    if (name === ALL_CHANNEL) return true;
    return this.data.config.cdcEntities.some((e) => channelForEntity(e) === name);
  }

  isEnabled(entity) {
    return this.data.config.cdcEntities.includes(entity);
  }

  enable(entity) {
    if (!this.isEnabled(entity)) this.data.config.cdcEntities.push(entity);
  }

  /**
   * Channel record, created on first use. Each channel gets its own base far from the others
   * (and from earlier epochs), so ids of one channel/stream are never valid on another.
   */
  channel(name) {
    let ch = this.data.channels[name];
    if (!ch) {
      const base = this.data.epoch * 1e8 + this.data.channelCount++ * 1e6;
      ch = { base, last: base, floor: base, count: 0, events: [] };
      this.data.channels[name] = ch;
    }
    return ch;
  }

  /**
   * Publish one CDC payload ({ChangeEventHeader, ...fields}) on /data/ChangeEvents and on the
   * entity's channel; returns {channel: replayId}.
   */
  publish(payload) {
    const entity = payload.ChangeEventHeader.entityName;
    const schema = schemaId(entity);
    const replayIds = {};
    for (const name of [ALL_CHANNEL, channelForEntity(entity)]) {
      const ch = this.channel(name);
      // Increasing but not contiguous (+1, +2, +1, ...), as clients must not do arithmetic on them.
      ch.last += 1 + (ch.count % 2);
      ch.count += 1;
      // Retention counts from when the bus got the event, whatever commitTimestamp a test supplied.
      const event = { replayId: ch.last, schema, payload, ts: Date.now() };
      ch.events.push(event);
      this.prune(ch);
      replayIds[name] = ch.last;
      this.onEvent(name, this.message(name, event));
    }
    this.data.published.push({ replayIds, payload });
    return replayIds;
  }

  message(name, event) {
    return {
      channel: name,
      data: { schema: event.schema, payload: event.payload, event: { replayId: event.replayId } },
    };
  }

  /** Drop events beyond the count cap or older than the retention time; the floor follows. */
  prune(ch) {
    const { maxRetainedEvents, retentionSeconds } = this.data.config;
    const oldest = Date.now() - retentionSeconds * 1000;
    while (ch.events.length && (ch.events.length > maxRetainedEvents || ch.events[0].ts < oldest)) {
      ch.floor = ch.events.shift().replayId;
    }
  }

  /**
   * A subscribe replay id is valid when no event after it was lost (>= floor) and it belongs to
   * this stream (<= last). -1 and -2 are always valid.
   */
  validReplay(name, id) {
    if (id === -1 || id === -2) return true;
    if (!Number.isInteger(id)) return false;
    const ch = this.channel(name);
    this.prune(ch);
    return id >= ch.floor && id <= ch.last;
  }

  /** Retained events to deliver on subscribe: -1 none, -2 all, N those after N. */
  backlog(name, from) {
    if (from === -1) return [];
    const ch = this.channel(name);
    this.prune(ch);
    return ch.events.filter((e) => from === -2 || e.replayId > from).map((e) => this.message(name, e));
  }

  /** Expire retained events with replayId <= upTo (on one channel or all). */
  expire(upTo, channelName) {
    const names = channelName ? [channelName] : Object.keys(this.data.channels);
    const floors = {};
    for (const name of names) {
      const ch = this.channel(name);
      ch.floor = Math.max(ch.floor, Math.min(upTo, ch.last));
      ch.events = ch.events.filter((e) => e.replayId > ch.floor);
      floors[name] = ch.floor;
    }
    return floors;
  }

  /** Forget every channel and start a new epoch: all stored replay ids become invalid. */
  resetStream() {
    this.data.epoch += 1;
    this.data.channels = {};
    this.data.channelCount = 0;
  }
}

module.exports = {
  ALL_CHANNEL,
  Bus,
  cdcBody,
  changedFieldName,
  channelForEntity,
  compoundNames,
  compoundOf,
  compoundValues,
  schemaId,
};
