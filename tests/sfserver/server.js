#!/usr/bin/env node
'use strict';
/*
 * Salesforce-compatible test server for sfstripe: OAuth token endpoint, a REST API subset that
 * emits Change Data Capture events for every write, and the Streaming API (CometD/Bayeux via
 * faye) with Salesforce's replay extension and error texts. Loopback only, for tests.
 *
 *   node tests/sfserver/server.js --port N [--state FILE] [--host 127.0.0.1]
 *        [--poll-timeout SECONDS] [--config FILE.json] [--jwt-key [CLIENT_ID=]PEM_FILE]
 *        [--stdin-lifeline] [--verbose]
 *
 * Prints exactly one line `listening http://127.0.0.1:N` when ready (--port 0 picks a free
 * port). With --state the org (config, users, clients, tokens, records, retained events and
 * replay counters) survives a restart; CometD sessions and injected failures do not.
 * --stdin-lifeline: exit when stdin closes, so a crashed test runner leaves no server behind.
 *
 * Defaults (see lib/state.js):
 *   org id           00Dxx0000000001AAA, Developer Edition, IsSandbox false
 *   users            integration@sfstripe.test / integration-password  id 005xx000001X9AbAAK
 *                    admin@sfstripe.test       / admin-password        id 005xx000001X8UzAAK
 *                    (no security token; password grant wants password + securityToken)
 *   connected app    client_id sfstripe-test-consumer-key, secret sfstripe-test-consumer-secret,
 *                    client-credentials run-as integration@sfstripe.test, no refresh rotation,
 *                    no JWT key until --jwt-key or POST /_test/clients {publicKey}
 *   JWT audience     https://login.salesforce.com
 *   CDC entities     Account, Contact, Product2, Pricebook2, PricebookEntry
 *   API allocation   15000/day (Sforce-Limit-Info: api-usage=N/15000); query page 2000
 *   /meta/connect    held up to 110 s (advice.timeout 110000)
 *
 * HTTP surface:
 *   POST /services/oauth2/token      password | client_credentials | refresh_token |
 *                                    urn:ietf:params:oauth:grant-type:jwt-bearer
 *   POST /services/oauth2/revoke     token=...
 *   GET  /id/<orgId>/<userId>        identity (Bearer)
 *   GET  /services/data/             versions
 *   *    /services/data/v<ver>/...   sobjects, composite/sobjects, query, queryAll, limits
 *   POST /cometd/<ver>               Bayeux long-polling
 *
 * Control API (JSON, no auth):
 *   GET  /_test/health                         {ok, baseUrl, port, statePath}
 *   POST /_test/reset                          defaults back; sessions dropped; old replay ids invalid
 *   GET|POST /_test/config                     read / merge config keys (lib/state.js defaultConfig)
 *   GET|POST /_test/users                      list / upsert {username, password, securityToken, id?, name?}
 *   GET|POST /_test/clients                    list / upsert {clientId, clientSecret, publicKey (PEM key or
 *                                              certificate, appended), runAs, rotateRefreshTokens}
 *   POST /_test/refresh_token                  {clientId?, username?} -> {refresh_token}
 *   POST /_test/revoke_tokens                  {refreshTokens?: bool} -> {revoked}; CometD sessions die
 *   POST /_test/publish                        {entity, changeType, recordIds, fields, changedFields,
 *                                              transactionKey?, sequenceNumber?, commitUser?, changeOrigin?,
 *                                              commitTimestamp?, commitNumber?} or {events: [...]}
 *                                              -> {replayIds: {channel: id}, schema, payload} (or {events})
 *   GET  /_test/published[?entity=X]           every published payload with its replay ids
 *   GET  /_test/events?channel=/data/X         retained events of a channel {floor, last, events}
 *   GET  /_test/records?type=X[&deleted=true]  stored records
 *   POST /_test/records                        "UI edit": {type, id?, fields, delete?, emit?,
 *                                              changeOrigin? (default ""), commitUser?} -> {id, replayIds}
 *   POST /_test/rest/fail                      {kind: UNABLE_TO_LOCK_ROW | REQUEST_LIMIT_EXCEEDED |
 *                                              SERVER_UNAVAILABLE | FIELD_CUSTOM_VALIDATION_EXCEPTION,
 *                                              or status+errorCode+message, fields?, count?, method?,
 *                                              path? (substring), perRecord?}
 *   GET  /_test/cometd/clients                 sessions with their subscriptions
 *   POST /_test/cometd/drop_sessions           -> {dropped}; next request: 403::Unknown client
 *   POST /_test/cometd/fail                    {on: ["/meta/connect"|"connect", ...], count, error, advice?}
 *   POST /_test/cometd/fail_subscribes         {count, mode: "silent"|"error", error?, advice?}
 *   POST /_test/cometd/limit_exceeded          {count, on?: [connect, subscribe]} 403::Organization total
 *                                              events daily limit exceeded, advice reconnect none
 *   POST /_test/cometd/too_busy                {count, on?: [handshake, connect, subscribe]} 503::Server is
 *                                              too busy... (handshake: 403::Handshake denied + failureReason)
 *   POST /_test/cometd/expire                  {replayId, channel?} drop retained events <= replayId
 *   POST /_test/cometd/reset_stream            forget all channels; every stored replay id becomes invalid
 */

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const { State } = require('./lib/state');
const { Bus } = require('./lib/cdc');
const { OAuth, OAuthError, publicKeyOf } = require('./lib/oauth');
const { Org } = require('./lib/org');
const { Rest } = require('./lib/rest');
const { Cometd } = require('./lib/cometd');
const { Control } = require('./lib/control');
const { readBody, sendJson, bearerToken } = require('./lib/http');

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', state: null, pollTimeout: 110, config: null, jwtKeys: [], verbose: false, lifeline: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--port') opts.port = Number(next());
    else if (arg === '--host') opts.host = next();
    else if (arg === '--state') opts.state = path.resolve(next());
    else if (arg === '--poll-timeout') opts.pollTimeout = Number(next());
    else if (arg === '--config') opts.config = path.resolve(next());
    else if (arg === '--jwt-key') opts.jwtKeys.push(next());
    else if (arg === '--verbose') opts.verbose = true;
    else if (arg === '--stdin-lifeline') opts.lifeline = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0) throw new Error('--port must be an integer >= 0');
  return opts;
}

/** CLI-provided settings, applied to a fresh org (first start and every reset). */
function overridesFrom(opts) {
  const file = opts.config ? JSON.parse(fs.readFileSync(opts.config, 'utf8')) : {};
  const keys = opts.jwtKeys.map((spec) => {
    const eq = spec.indexOf('=');
    const [clientId, pemPath] = eq > 0 && !fs.existsSync(spec) ? [spec.slice(0, eq), spec.slice(eq + 1)] : [null, spec];
    const pem = fs.readFileSync(pemPath, 'utf8');
    publicKeyOf(pem); // fail fast on a bad key
    return { clientId, pem };
  });
  return (data) => {
    Object.assign(data.config, file.config || {});
    if (file.users) data.users = file.users;
    if (file.clients) data.clients = file.clients;
    for (const { clientId, pem } of keys) {
      const client = clientId ? data.clients.find((c) => c.clientId === clientId) : data.clients[0];
      if (!client) throw new Error(`--jwt-key: unknown client ${clientId}`);
      client.publicKeys.push(pem);
    }
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const state = new State(opts.state, overridesFrom(opts));
  let baseUrl = null; // known once listening
  const bus = new Bus(state);
  const oauth = new OAuth(state, () => baseUrl);
  const org = new Org(state, bus);
  const rest = new Rest({ state, org, oauth });
  const cometd = new Cometd({ state, bus, oauth, pollTimeout: opts.pollTimeout });
  const control = new Control({
    state,
    bus,
    org,
    oauth,
    rest,
    cometd,
    info: () => ({ baseUrl, port: server.address().port, statePath: opts.state }),
  });

  async function tokenEndpoint(req, res) {
    const params = new URLSearchParams(await readBody(req));
    try {
      sendJson(res, 200, oauth.token(params));
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      sendJson(res, 400, err.body);
    }
  }

  async function route(req, res, url) {
    const p = url.pathname;
    if (p.startsWith('/cometd/')) return cometd.handle(req, res, url);
    if (p === '/services/oauth2/token' && req.method === 'POST') return tokenEndpoint(req, res);
    if (p === '/services/oauth2/revoke' && req.method === 'POST') {
      const token = new URLSearchParams(await readBody(req)).get('token') || url.searchParams.get('token');
      return oauth.revoke(token)
        ? sendJson(res, 200, undefined)
        : sendJson(res, 400, { error: 'unsupported_token_type', error_description: 'this token type is not supported' });
    }
    if (p.startsWith('/services/data')) return rest.handle(req, res, url);
    if (p.startsWith('/_test/')) return control.handle(req, res, url);
    const id = /^\/id\/([^/]+)\/([^/]+)$/.exec(p);
    if (id && req.method === 'GET') {
      if (!oauth.validate(bearerToken(req.headers.authorization))) return sendJson(res, 403, 'Bad_OAuth_Token');
      const body = oauth.identity(id[1], id[2]);
      return body ? sendJson(res, 200, body) : sendJson(res, 404, 'Bad_Id');
    }
    return sendJson(res, 404, [{ message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' }]);
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (opts.verbose) console.error(`${req.method} ${req.url}`);
    if (!url.pathname.startsWith('/cometd/')) {
      // Persist right before the response starts, synchronously: whatever a client saw
      // acknowledged survives a SIGKILL that follows.
      const writeHead = res.writeHead;
      res.writeHead = (...args) => {
        state.save();
        return writeHead.apply(res, args);
      };
    }
    route(req, res, url).catch((err) => {
      console.error(err);
      if (!res.headersSent) sendJson(res, 500, [{ message: String(err.message), errorCode: 'UNKNOWN_EXCEPTION' }]);
      else res.destroy();
    });
  });
  // Long polls are held by faye for up to --poll-timeout; keep Node's own timeouts out of the way.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5000;

  // State is already saved after every request; exiting drops held long polls, which clients
  // must treat like any network failure anyway.
  const stop = () => {
    state.save();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.lifeline) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    baseUrl = `http://${opts.host}:${port}`;
    process.stdout.write(`listening ${baseUrl}\n`);
  });
}

main();
