'use strict';
// Salesforce record ids: 3-char key prefix + 12 chars (15 = case-sensitive id) + a 3-char
// checksum that makes the 18-char form case-insensitive. CDC and REST use the 18-char form.

const KEY_PREFIXES = {
  Account: '001',
  Contact: '003',
  User: '005',
  Opportunity: '006',
  Lead: '00Q',
  Organization: '00D',
  Task: '00T',
  Event: '00U',
  OpportunityLineItem: '00k',
  Product2: '01t',
  Pricebook2: '01s',
  PricebookEntry: '01u',
  Asset: '02i',
  Case: '500',
  Campaign: '701',
  Contract: '800',
  Order: '801',
  OrderItem: '802',
  Quote: '0Q0',
};

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SUFFIX_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/** The 3-char suffix: one char per 5-char chunk, encoding which chars are upper case. */
function idSuffix(id15) {
  let out = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15[chunk * 5 + i];
      if (c >= 'A' && c <= 'Z') bits |= 1 << i;
    }
    out += SUFFIX_CHARS[bits];
  }
  return out;
}

/** Normalise a 15- or 18-char id to its 18-char form; anything else -> null. */
function to18(id) {
  if (typeof id !== 'string' || !/^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$/.test(id)) return null;
  const id15 = id.slice(0, 15);
  return id15 + idSuffix(id15);
}

function base62(n, width) {
  let s = '';
  do {
    s = BASE62[n % 62] + s;
    n = Math.floor(n / 62);
  } while (n > 0);
  return s.padStart(width, '0');
}

function isCustomType(type) {
  return /^[A-Za-z][A-Za-z0-9_]*__c$/.test(type);
}

/** Key prefix of a type; custom objects get a0<n> allocated on first use. null = unknown. */
function keyPrefix(data, type) {
  if (KEY_PREFIXES[type]) return KEY_PREFIXES[type];
  if (!isCustomType(type)) return null;
  if (!data.customPrefixes[type]) {
    const n = Object.keys(data.customPrefixes).length;
    data.customPrefixes[type] = 'a0' + BASE62[n % 62];
  }
  return data.customPrefixes[type];
}

function typeOfId(data, id) {
  const prefix = id.slice(0, 3);
  for (const [type, p] of Object.entries(KEY_PREFIXES)) if (p === prefix) return type;
  for (const [type, p] of Object.entries(data.customPrefixes)) if (p === prefix) return type;
  return null;
}

/** New 18-char id, e.g. 001xx0000000001AAA-style: prefix + "xx0" (pod) + 9-char counter. */
function newId(data, type) {
  const prefix = keyPrefix(data, type);
  const id15 = prefix + 'xx0' + base62(data.nextRecordNumber++, 9);
  return id15 + idSuffix(id15);
}

module.exports = { KEY_PREFIXES, idSuffix, to18, keyPrefix, typeOfId, newId, isCustomType };
