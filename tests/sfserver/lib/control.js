'use strict';
// Control API for tests under /_test/ (JSON in, JSON out, no auth). See server.js for the list.

const { readJson, sendJson, HttpError } = require('./http');
const { ERR } = require('./cometd');
const { schemaId } = require('./cdc');
const { to18 } = require('./ids');
const { ADMIN_USER_ID } = require('./state');
const crypto = require('node:crypto');

class Control {
  constructor({ state, bus, org, oauth, rest, cometd, info }) {
    Object.assign(this, { state, bus, org, oauth, rest, cometd, info });
    this.routes = {
      'GET /_test/health': () => ({ ok: true, ...this.info() }),
      'POST /_test/reset': () => this.reset(),
      'GET /_test/config': () => this.state.data.config,
      'POST /_test/config': (b) => this.config(b),
      'GET /_test/users': () => this.state.data.users,
      'POST /_test/users': (b) => this.upsertUser(b),
      'GET /_test/clients': () => this.state.data.clients,
      'POST /_test/clients': (b) => this.upsertClient(b),
      'POST /_test/refresh_token': (b) => ({ refresh_token: this.oauth.grantRefreshToken(b.clientId, b.username) }),
      'POST /_test/revoke_tokens': (b) => this.revokeTokens(b),
      'POST /_test/publish': (b) => this.publish(b),
      'GET /_test/published': (b, url) => this.published(url),
      'GET /_test/events': (b, url) => this.events(url),
      'GET /_test/records': (b, url) => this.records(url),
      'POST /_test/records': (b) => this.edit(b),
      'POST /_test/rest/fail': (b) => this.rest.injectFailure(b),
      'GET /_test/cometd/clients': () => this.cometd.describe(),
      'POST /_test/cometd/drop_sessions': () => ({ dropped: this.cometd.dropSessions() }),
      'POST /_test/cometd/fail': (b) => this.cometd.inject({ channels: b.on || b.channels, ...b }),
      'POST /_test/cometd/fail_subscribes': (b) =>
        this.cometd.inject({
          channels: ['/meta/subscribe'],
          count: b.count,
          silent: (b.mode || 'silent') === 'silent',
          error: b.error,
          advice: b.advice,
        }),
      'POST /_test/cometd/limit_exceeded': (b) =>
        this.cometd.inject({
          channels: b.on || ['/meta/connect', '/meta/subscribe'],
          count: b.count,
          error: ERR.limitExceeded,
          advice: b.advice || { reconnect: 'none' },
        }),
      'POST /_test/cometd/too_busy': (b) =>
        this.cometd.inject({
          channels: b.on || ['/meta/handshake', '/meta/connect', '/meta/subscribe'],
          count: b.count,
          error: ERR.tooBusy,
          advice: b.advice || { reconnect: 'retry', interval: 0 },
        }),
      'POST /_test/cometd/expire': (b) => ({ floors: this.bus.expire(Number(b.replayId), b.channel) }),
      'POST /_test/cometd/reset_stream': () => {
        this.bus.resetStream();
        return { epoch: this.state.data.epoch };
      },
    };
  }

  async handle(req, res, url) {
    const route = this.routes[`${req.method} ${url.pathname.replace(/\/+$/, '')}`];
    try {
      if (!route) throw new HttpError(404, `no control route ${req.method} ${url.pathname}`);
      const body = (await readJson(req)) || {};
      const result = await route(body, url);
      sendJson(res, 200, result === undefined ? {} : result);
    } catch (err) {
      sendJson(res, err.status || 400, { error: err.message });
    }
  }

  /** Default author of changes made "in Salesforce": the admin user. */
  uiUser() {
    const users = this.state.data.users;
    return (users.find((u) => u.id === ADMIN_USER_ID) || users[0]).id;
  }

  reset() {
    this.cometd.reset();
    this.rest.reset();
    this.state.reset();
    return { epoch: this.state.data.epoch };
  }

  config(body) {
    const config = this.state.data.config;
    for (const [k, v] of Object.entries(body)) {
      if (!(k in config)) throw new HttpError(400, `unknown config key ${k}`);
      config[k] = v;
    }
    return config;
  }

  upsertUser(body) {
    if (!body.username) throw new HttpError(400, 'username required');
    const users = this.state.data.users;
    let user = users.find((u) => u.username === body.username);
    if (!user) {
      const n = users.length + 1;
      const id15 = `005xx000001U${String(n).padStart(3, '0')}`;
      user = { id: to18(id15), username: body.username, password: '', securityToken: '', name: body.username, email: body.username };
      users.push(user);
    }
    Object.assign(user, body);
    return user;
  }

  upsertClient(body) {
    if (!body.clientId) throw new HttpError(400, 'clientId required');
    const clients = this.state.data.clients;
    let client = clients.find((c) => c.clientId === body.clientId);
    if (!client) {
      client = { clientId: body.clientId, clientSecret: '', publicKeys: [], runAs: null, rotateRefreshTokens: false };
      clients.push(client);
    }
    const { publicKey, ...rest } = body;
    Object.assign(client, rest);
    if (publicKey) client.publicKeys = [...client.publicKeys, publicKey];
    return client;
  }

  revokeTokens(body) {
    const revoked = this.oauth.revokeAll(Boolean(body.refreshTokens));
    this.cometd.revokeSessions();
    return { revoked };
  }

  /**
   * Publish CDC events as if Salesforce had captured them (the record store is not touched).
   * Body: one event, or {events: [...]} sharing one transaction (sequenceNumber 1..n).
   * Event: {entity, changeType, recordIds, fields, changedFields, transactionKey,
   *         sequenceNumber, commitUser, changeOrigin, commitTimestamp, commitNumber}
   */
  publish(body) {
    const events = Array.isArray(body.events) ? body.events : [body];
    const data = this.state.data;
    const transactionKey = body.transactionKey || crypto.randomUUID();
    data.commitNumber += 1;
    const now = Date.now();
    const out = events.map((e, i) => {
      if (!e.entity) throw new HttpError(400, 'entity required');
      this.bus.enable(e.entity); // publishing for an entity selects it for CDC
      const payload = {
        ChangeEventHeader: {
          entityName: e.entity,
          recordIds: e.recordIds || [],
          changeType: e.changeType || 'UPDATE',
          changeOrigin: e.changeOrigin === undefined ? '' : e.changeOrigin,
          transactionKey: e.transactionKey || transactionKey,
          sequenceNumber: e.sequenceNumber || i + 1,
          commitTimestamp: e.commitTimestamp || now,
          commitNumber: e.commitNumber || data.commitNumber,
          commitUser: e.commitUser || this.uiUser(),
          changedFields: e.changedFields || [],
        },
        ...(e.fields || {}),
      };
      return { replayIds: this.bus.publish(payload), schema: schemaId(e.entity), payload };
    });
    return Array.isArray(body.events) ? { events: out } : out[0];
  }

  published(url) {
    const entity = url.searchParams.get('entity');
    return this.state.data.published.filter((p) => !entity || p.payload.ChangeEventHeader.entityName === entity);
  }

  /** Retained events of one channel, as a subscriber would receive them. */
  events(url) {
    const name = url.searchParams.get('channel') || '/data/ChangeEvents';
    const ch = this.bus.channel(name);
    return { channel: name, floor: ch.floor, last: ch.last, events: this.bus.backlog(name, -2) };
  }

  records(url) {
    const type = url.searchParams.get('type');
    if (!type) throw new HttpError(400, 'type required');
    return this.org.rows(type, url.searchParams.get('deleted') === 'true');
  }

  /**
   * A change made "in Salesforce" (UI, another integration): writes the record store and emits
   * CDC like a REST write would. Body: {type, id?, fields?, delete?, emit?, changeOrigin?,
   * commitUser?}. Without id = create; with id = update (or delete when delete: true).
   */
  edit(body) {
    const { type, id, fields = {} } = body;
    if (!type) throw new HttpError(400, 'type required');
    const user = body.commitUser || this.uiUser();
    const txn = this.org.begin(user, body.changeOrigin === undefined ? '' : body.changeOrigin);
    try {
      let recordId;
      if (!id) {
        this.org.writableType(type);
        this.org.validateFields(type, fields, true);
        recordId = txn.create(type, fields);
      } else if (body.delete) {
        recordId = txn.remove(type, id);
      } else {
        this.org.validateFields(type, fields, false);
        recordId = txn.update(type, id, fields);
      }
      const replayIds = body.emit === false ? [] : txn.commit();
      return { id: recordId, replayIds: replayIds[0] || null };
    } catch (err) {
      if (err.errorCode) throw new HttpError(err.status, `${err.errorCode}: ${err.message}`);
      throw err;
    }
  }
}

module.exports = { Control };
