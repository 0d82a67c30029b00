'use strict';
// Small HTTP helpers shared by the route modules (plain node:http, no framework).

const MAX_BODY = 10 * 1024 * 1024;

/** Read the whole request body as a UTF-8 string. */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Parse a JSON body; an empty body is `undefined`. Throws HttpError(400) on bad JSON. */
async function readJson(req) {
  const text = await readBody(req);
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `invalid JSON body: ${err.message}`);
  }
}

function sendJson(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    ...(text ? { 'Content-Type': 'application/json;charset=UTF-8' } : {}),
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Error for the control API and plumbing (not Salesforce-shaped). */
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Extract the token from `Authorization: Bearer <t>` or the legacy `OAuth <t>`. */
function bearerToken(header) {
  const m = /^(?:Bearer|OAuth)\s+(\S+)\s*$/i.exec(header || '');
  return m ? m[1] : null;
}

module.exports = { readBody, readJson, sendJson, HttpError, bearerToken };
