// The webhook benchmark's peer: @supabase/stripe-sync-engine's processWebhook behind a bare
// Node http server, answering 200 once the webhook's object is upserted (as it is meant to be
// deployed). Settings come from the environment; it prints one JSON line once it listens.
//
// CommonJS on purpose: the package's ESM build finds its migrations through `__dirname`, which
// ESM lacks, and runMigrations only logs its errors, so under ESM nothing is migrated, silently.
'use strict'

const http = require('node:http')
const { StripeSync, runMigrations } = require('@supabase/stripe-sync-engine')

const SCHEMA = 'stripe'
const databaseUrl = required('DATABASE_URL')
const webhookSecret = required('WEBHOOK_SECRET')
const port = Number(process.env.PORT || 0)
const poolMax = Number(process.env.POOL_MAX || 10)

function required(name) {
  const value = process.env[name]
  if (!value) {
    console.error(`${name} is not set`)
    process.exit(2)
  }
  return value
}

function reply(res, status, body) {
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  })
  res.end(body)
}

async function main() {
  await runMigrations({ databaseUrl, schema: SCHEMA })
  const sync = new StripeSync({
    poolConfig: { connectionString: databaseUrl, max: poolMax },
    schema: SCHEMA,
    stripeSecretKey: 'sk_test_bench',
    stripeWebhookSecret: webhookSecret,
    // Trust the payloads: no Stripe API call of any kind (the benchmark has no network).
    revalidateObjectsViaStripeApi: [],
    backfillRelatedEntities: false,
    autoExpandLists: false,
  })
  // runMigrations swallows its errors: prove the tables are there before taking traffic.
  const { rows } = await sync.postgresClient.query(
    `select count(*)::int as n from information_schema.tables where table_schema = $1`,
    [SCHEMA],
  )
  if (rows[0].n < 10) throw new Error(`migrations did not run: ${rows[0].n} tables in ${SCHEMA}`)

  const ok = JSON.stringify({ received: true })
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/readyz') return reply(res, 200, '{"status":"ready"}')
    if (req.method !== 'POST' || req.url !== '/webhooks/stripe') return reply(res, 404, '{}')
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      sync.processWebhook(Buffer.concat(chunks), req.headers['stripe-signature']).then(
        () => reply(res, 200, ok),
        (err) => {
          const status = err && err.type === 'StripeSignatureVerificationError' ? 400 : 500
          reply(res, status, JSON.stringify({ error: String(err && err.message) }))
        },
      )
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(port, '127.0.0.1', () => {
    console.log(JSON.stringify({ listening: server.address().port, tables: rows[0].n }))
  })

  const stop = () => {
    server.close()
    server.closeAllConnections()
    sync.close().finally(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // The benchmark holds our stdin: if it dies without cleaning up, so do we.
  process.stdin.on('end', stop)
  process.stdin.resume()
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
