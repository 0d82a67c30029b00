'use strict';
// Streaming API: a real Bayeux server (faye) at /cometd/<version>, bent into Salesforce's shape
// by a server extension:
//  - every HTTP request needs a valid `Authorization: Bearer|OAuth <token>`;
//  - handshake advertises long-polling only and ext {replay: true, "payload.format": true};
//  - Salesforce error texts (403::Handshake denied + ext.sfdc.failureReason, 401::Authentication
//    invalid with advice none, 403::Unknown client with advice handshake, replay/channel errors);
//  - the replay extension: ext.replay {channel: -1 | -2 | replayId} on /meta/subscribe.
//
// Subscriptions are tracked here, not in faye's channel table, and events are queued per client
// straight into faye's in-memory engine. That is what lets one client get its own backlog on
// subscribe, lets a subscribe "succeed" without subscribing (the silent-failure scenario), and
// keeps backlog-then-live ordering (all delivery is synchronous in one tick).

const faye = require('faye');
const { bearerToken } = require('./http');

const HANDSHAKE = '/meta/handshake';
const CONNECT = '/meta/connect';
const SUBSCRIBE = '/meta/subscribe';
const UNSUBSCRIBE = '/meta/unsubscribe';

const ERR = {
  handshakeDenied: '403::Handshake denied',
  authInvalid: '401::Authentication invalid',
  unknownClient: '403::Unknown client',
  noChannel: "400::The channel you requested to subscribe to doesn't exist",
  badReplay: (id) =>
    `400::The replayId {${id}} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.`,
  limitExceeded: '403::Organization total events daily limit exceeded',
  tooBusy: '503::Server is too busy. Please try your request again later.',
};

class Cometd {
  /**
   * @param {object} deps
   * @param {import('./state').State} deps.state
   * @param {import('./cdc').Bus} deps.bus
   * @param {import('./oauth').OAuth} deps.oauth
   * @param {number} deps.pollTimeout  seconds a /meta/connect is held (Salesforce: 110)
   */
  constructor({ state, bus, oauth, pollTimeout }) {
    this.state = state;
    this.bus = bus;
    this.oauth = oauth;
    this.adapter = new faye.NodeAdapter({ mount: '/cometd', timeout: pollTimeout });
    // faye internals (pinned faye 1.4.3): the engine proxy and its in-memory engine, whose
    // per-client message queues we feed directly.
    this.engine = this.adapter._server._engine;
    this.memory = this.engine._engine;
    this.sessions = new Map(); // clientId -> {userId, revoked, connected, subscriptions: Set}
    this.injections = []; // {channels: [...], remaining, error, advice, failureReason, silent}
    this.notes = new WeakMap(); // http request -> Map(message key -> note for the outgoing side)

    this.engine.on('disconnect', (clientId) => this.sessions.delete(clientId));
    this.bus.onEvent = (channel, message) => this.broadcast(channel, message);
    this.adapter.addExtension({
      incoming: (message, request, callback) => callback(this.incoming(message, request)),
      outgoing: (message, request, callback) => callback(this.outgoing(message, request)),
    });
  }

  /** HTTP entry point for /cometd/<version>. */
  handle(req, res, url) {
    if (!/^\/cometd\/\d+\.\d+\/?$/.test(url.pathname)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return res.end('Not Found');
    }
    if (req.method !== 'POST') {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      return res.end('Invalid connection type: only long-polling POST is supported');
    }
    if (Number(req.headers['content-length'] || 0) > 32768) {
      res.writeHead(413, { 'Content-Type': 'text/plain' });
      return res.end('Maximum Request Size Exceeded');
    }
    return this.adapter.handle(req, res);
  }

  // Notes carry per-message decisions from the incoming to the outgoing extension: faye builds
  // the response as a new object, so nothing set on the request message survives otherwise.
  note(request, message, info) {
    if (!this.notes.has(request)) this.notes.set(request, new Map());
    this.notes.get(request).set(`${message.channel}|${message.id}|${message.subscription || ''}`, info);
  }

  recall(request, response) {
    const notes = this.notes.get(request);
    const key = `${response.channel}|${response.id}|${typeof response.subscription === 'string' ? response.subscription : ''}`;
    const info = notes && notes.get(key);
    if (info) notes.delete(key);
    return info || {};
  }

  incoming(message, request) {
    const channel = message.channel;
    const auth = this.oauth.validate(bearerToken(request.headers.authorization));
    const fail = (error, info = {}) => {
      message.error = error;
      this.note(request, message, info);
      return message;
    };

    if (channel === HANDSHAKE) {
      if (!auth) return fail(ERR.handshakeDenied, { failureReason: ERR.authInvalid, advice: { reconnect: 'none' } });
      const inj = this.takeInjection(channel);
      if (inj) return fail(ERR.handshakeDenied, { failureReason: inj.error, advice: inj.advice });
      this.note(request, message, { auth });
      return message;
    }
    if (!channel.startsWith('/meta/')) {
      // Salesforce does not accept CometD publishes for CDC channels.
      return fail(`403:${channel}:Publish not allowed`);
    }

    if (!auth) return fail(ERR.authInvalid, { advice: { reconnect: 'none' } });
    const session = this.sessions.get(message.clientId);
    if (!session) return message; // faye answers "Unknown client"; outgoing rewrites the text
    if (session.revoked) {
      // The CometD session died with the OAuth session: a new token cannot revive it.
      this.engine.destroyClient(message.clientId);
      return message;
    }

    if (channel === CONNECT && message.connectionType !== 'long-polling') {
      return fail('400::Invalid connection type', { advice: { reconnect: 'none' } });
    }
    if (channel === CONNECT && !session.connected) {
      // Like CometD servers (and unlike faye's default), answer the first connect after a
      // handshake at once; clients such as aiocometd block open() on it.
      session.connected = true;
      message.advice = { ...(message.advice || {}), timeout: 0 };
    }
    const inj = this.takeInjection(channel);
    if (inj && inj.silent && channel === SUBSCRIBE) {
      this.note(request, message, { silent: true });
      return message;
    }
    if (inj) return fail(inj.error, { advice: inj.advice });

    if (channel === SUBSCRIBE) {
      const sub = message.subscription;
      if (typeof sub !== 'string' || !this.bus.channelExists(sub)) return fail(ERR.noChannel);
      const replay = message.ext && message.ext.replay && sub in message.ext.replay ? message.ext.replay[sub] : -1;
      if (!this.bus.validReplay(sub, replay)) return fail(ERR.badReplay(replay));
      this.note(request, message, { replay });
    }
    return message;
  }

  outgoing(response, request) {
    const info = this.recall(request, response);
    const channel = response.channel;
    if (response.error && /^401:[^:]*:Unknown client$/.test(response.error)) {
      response.error = ERR.unknownClient;
      response.advice = { reconnect: 'handshake', interval: 0 };
    }
    if (!response.successful && info.advice) response.advice = info.advice;

    if (channel === HANDSHAKE) {
      response.supportedConnectionTypes = ['long-polling'];
      if (response.successful) {
        this.sessions.set(response.clientId, {
          userId: info.auth.userId,
          revoked: false,
          connected: false,
          subscriptions: new Set(),
        });
        response.ext = { replay: true, 'payload.format': true };
      } else if (info.failureReason) {
        response.ext = { sfdc: { failureReason: info.failureReason } };
      }
    }

    const session = this.sessions.get(response.clientId);
    if (channel === SUBSCRIBE && response.successful && session && !info.silent && 'replay' in info) {
      session.subscriptions.add(response.subscription);
      for (const event of this.bus.backlog(response.subscription, info.replay)) {
        this.deliver(response.clientId, event);
      }
    }
    if (channel === UNSUBSCRIBE && response.successful && session) {
      session.subscriptions.delete(response.subscription);
    }
    return response;
  }

  /** Queue one event for one client; faye flushes it to a waiting /meta/connect at once. */
  deliver(clientId, message) {
    if (!this.memory._messages.has(clientId)) this.memory._messages.set(clientId, []);
    this.memory._messages.get(clientId).push(structuredClone(message));
    this.memory.emptyQueue(clientId);
    this.state.data.deliveredEvents += 1;
  }

  broadcast(channel, message) {
    for (const [clientId, session] of this.sessions) {
      if (session.subscriptions.has(channel)) this.deliver(clientId, message);
    }
  }

  takeInjection(channel) {
    const inj = this.injections.find((i) => i.remaining > 0 && i.channels.includes(channel));
    if (!inj) return null;
    inj.remaining -= 1;
    this.injections = this.injections.filter((i) => i.remaining > 0);
    return inj;
  }

  // ---- control API ----------------------------------------------------------------------

  /**
   * Fail the next `count` messages on `channels` (['/meta/connect', ...]) with `error`
   * (+ `advice`); `silent` subscribes answer successful but subscribe nothing.
   */
  inject({ channels, count = 1, error, advice, silent = false }) {
    const list = [].concat(channels).map((c) => (c.startsWith('/meta/') ? c : `/meta/${c}`));
    this.injections.push({ channels: list, remaining: count, error: error || ERR.tooBusy, advice, silent });
    return { channels: list, count, error: silent ? null : error || ERR.tooBusy, silent };
  }

  /** Drop every CometD session: their next request gets 403::Unknown client. */
  dropSessions() {
    const ids = [...this.sessions.keys()];
    for (const id of ids) this.engine.destroyClient(id);
    return ids.length;
  }

  /**
   * After a token revocation, existing sessions die on their next request. Held long polls are
   * answered now so clients find out promptly, as when Salesforce kills the session.
   */
  revokeSessions() {
    for (const [clientId, s] of this.sessions) {
      s.revoked = true;
      this.engine.flushConnection(clientId);
    }
  }

  reset() {
    this.dropSessions();
    this.injections = [];
  }

  describe() {
    return [...this.sessions].map(([clientId, s]) => ({
      clientId,
      userId: s.userId,
      revoked: s.revoked,
      subscriptions: [...s.subscriptions],
    }));
  }
}

module.exports = { Cometd, ERR };
