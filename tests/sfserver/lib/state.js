'use strict';
// Everything the fake org must remember across a process restart: configuration, users and
// connected apps, issued tokens, records, CDC channels with their retained events and replay
// counters, and usage counters. With --state FILE it is written synchronously (tmp file +
// rename) after every request that may have changed it, so a SIGKILL right after a response
// never loses what that response acknowledged. Runtime-only things (CometD sessions, injected
// failures, query cursors) deliberately live elsewhere: a restart loses them, as on Salesforce.

const fs = require('node:fs');

const ORG_ID = '00Dxx0000000001AAA';

/** Salesforce user ids from the samples: the integration user (REST writes) and an admin. */
const INTEGRATION_USER_ID = '005xx000001X9AbAAK';
const ADMIN_USER_ID = '005xx000001X8UzAAK';

function defaultConfig() {
  return {
    orgId: ORG_ID,
    orgName: 'sfstripe test org',
    isSandbox: false,
    organizationType: 'Developer Edition',
    instanceName: 'CS0',
    // JWT bearer flow: accepted `aud` values.
    audience: ['https://login.salesforce.com'],
    // Daily API request allocation reported in Sforce-Limit-Info and GET limits.
    apiMax: 15000,
    // DailyDeliveredPlatformEvents allocation reported by GET limits.
    deliveryMax: 10000,
    // Records per query page before nextRecordsUrl kicks in (Salesforce: 2000).
    queryPageSize: 2000,
    // Entities selected for Change Data Capture; others produce no events and their
    // /data/<X>ChangeEvent channel "doesn't exist".
    cdcEntities: ['Account', 'Contact', 'Product2', 'Pricebook2', 'PricebookEntry'],
    // Retention of CDC events (Salesforce: 72 h), plus a count cap per channel.
    retentionSeconds: 72 * 3600,
    maxRetainedEvents: 100000,
    // Fields that must be non-empty on create (and may not be nulled on update).
    requiredFields: {
      Account: ['Name'],
      Contact: ['LastName'],
      Lead: ['LastName', 'Company'],
      Opportunity: ['Name', 'StageName', 'CloseDate'],
      Product2: ['Name'],
      Pricebook2: ['Name'],
      PricebookEntry: ['Pricebook2Id', 'Product2Id', 'UnitPrice'],
    },
    // type -> list of writable field names. Unset type = any field accepted (permissive).
    fields: {},
    // type -> fields usable as upsert external ids. Unset type = any custom (`__c`) field.
    externalIdFields: {},
  };
}

function defaultUsers() {
  return [
    {
      id: INTEGRATION_USER_ID,
      username: 'integration@sfstripe.test',
      password: 'integration-password',
      securityToken: '',
      name: 'Integration User',
      email: 'integration@sfstripe.test',
    },
    {
      id: ADMIN_USER_ID,
      username: 'admin@sfstripe.test',
      password: 'admin-password',
      securityToken: '',
      name: 'Admin User',
      email: 'admin@sfstripe.test',
    },
  ];
}

function defaultClients() {
  return [
    {
      clientId: 'sfstripe-test-consumer-key',
      clientSecret: 'sfstripe-test-consumer-secret',
      // PEM public keys or X.509 certificates accepted for JWT bearer assertions.
      publicKeys: [],
      // Run-as user of the client credentials flow.
      runAs: 'integration@sfstripe.test',
      // When true every refresh_token grant returns a new refresh token and kills the old one.
      rotateRefreshTokens: false,
    },
  ];
}

function freshData(epoch) {
  return {
    format: 1,
    config: defaultConfig(),
    users: defaultUsers(),
    clients: defaultClients(),
    accessTokens: {}, // token -> {userId, clientId, issuedAt}
    refreshTokens: {}, // token -> {userId, clientId}
    records: {}, // type -> {id18 -> record}
    nextRecordNumber: 1,
    customPrefixes: {}, // custom object type -> key prefix
    // Bumped by reset/resetStream so replay ids of an earlier stream are never valid again.
    epoch,
    channels: {}, // channel name -> {base, last, floor, count, events: [...]}
    channelCount: 0,
    commitNumber: 11028456710000,
    apiUsage: 0,
    deliveredEvents: 0,
    published: [], // every CDC event ever published: {replayIds, payload}
  };
}

class State {
  /**
   * @param {string|null} file  JSON file to persist to (null = memory only)
   * @param {(data: object) => void} applyOverrides  CLI-provided settings, re-applied on reset
   */
  constructor(file, applyOverrides) {
    this.file = file;
    this.applyOverrides = applyOverrides || (() => {});
    if (file && fs.existsSync(file)) {
      this.data = JSON.parse(fs.readFileSync(file, 'utf8'));
    } else {
      this.data = freshData(1);
      this.applyOverrides(this.data);
      this.save();
    }
  }

  /** Back to defaults; the stream epoch moves on so old replay ids become invalid. */
  reset() {
    this.data = freshData(this.data.epoch + 1);
    this.applyOverrides(this.data);
    this.save();
  }

  save() {
    if (!this.file) return;
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.data));
    fs.renameSync(tmp, this.file);
  }
}

module.exports = { State, ORG_ID, INTEGRATION_USER_ID, ADMIN_USER_ID };
