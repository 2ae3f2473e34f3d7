// The vendors' own published API clients against a running server (`make dev`), each
// configured with nothing but its base URL and its API key. For every client that covers a
// seed contract's rotate route: create an endpoint through the native API, rotate it through
// the client, and check that the secret the client hands back is the one the native reveal
// route (`GET /v1/endpoints/{id}/secret`) shows, with no older secret left valid (the seed
// documents end the old secret at once). Also checks that the clients map the contract's
// documented errors (404, 401) to their own error classes.
//
// Which vendors publish a client, and why the others are not here: README.md, "The vendors'
// own clients". Versions are pinned in package.json / package-lock.json (npm) and in
// requirements-dev.txt (PyPI).
//
//   npm ci --prefix tests/vendor-clients
//   BASE_URL=http://127.0.0.1:9000 API_KEY=<owner key> MEMBER_API_KEY=<member key> \
//     PYTHON=.venv/bin/python node tests/vendor-clients/run.mjs
//
// Prints one line per check and closes with `vendor clients: N passed, M failed`; exits
// non-zero if any check failed.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Composio, { AuthenticationError, NotFoundError } from '@composio/client';

const here = dirname(fileURLToPath(import.meta.url));
const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`vendor clients: set ${name}`);
    process.exit(2);
  }
  return value;
};
const BASE_URL = env('BASE_URL').replace(/\/+$/, '');
const API_KEY = env('API_KEY');
const MEMBER_API_KEY = env('MEMBER_API_KEY');
const PYTHON = process.env.PYTHON || 'python3';

let passed = 0;
let failed = 0;

async function check(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL - ${name}: ${err?.stack || err}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// The native API, with plain fetch: it is what the clients are checked against.
async function native(method, path, body) {
  const res = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${API_KEY}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A fresh endpoint for one check, so that checks and reruns never share state.
async function newEndpoint(prefix) {
  const id = `${prefix}_${randomBytes(6).toString('hex')}`;
  const created = await native('POST', '/v1/endpoints', { id, url: 'https://example.com/hooks' });
  return { id, first: created.secret.value };
}

// The rotated secret must be the current one, and the only valid one.
async function expectRevealed(id, secret, first) {
  assert(typeof secret === 'string' && secret.startsWith('whsec_'), `not a whsec_ secret: ${secret}`);
  assert(secret !== first, 'the client returned the secret the endpoint was created with');
  const revealed = await native('GET', `/v1/endpoints/${encodeURIComponent(id)}/secret`);
  assert(
    revealed.secret.value === secret,
    `reveal shows ${revealed.secret.masked}, not the secret the client returned`,
  );
  assert(
    revealed.previous_secrets.length === 0,
    `${revealed.previous_secrets.length} older secret(s) still valid; the contract ends them at once`,
  );
}

async function expectError(promise, ErrorClass, status, slug) {
  let caught;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert(caught, `expected ${ErrorClass.name}, the call succeeded`);
  assert(
    caught instanceof ErrorClass,
    `expected ${ErrorClass.name}, got ${caught.constructor?.name}: ${caught.message}`,
  );
  assert(caught.status === status, `expected status ${status}, got ${caught.status}`);
  const got = caught.error?.error?.slug ?? caught.error?.slug;
  assert(got === slug, `expected slug ${slug}, got ${JSON.stringify(caught.error)}`);
}

// --- Composio: @composio/client (npm) ------------------------------------------------------
// Its webhookSubscriptions.rotateSecret(id) posts to /api/v3.1/webhook_subscriptions/{id}/
// rotate_secret with `x-api-key`, no body.
const composio = new Composio({ apiKey: API_KEY, baseURL: BASE_URL });
const composioMember = new Composio({ apiKey: MEMBER_API_KEY, baseURL: BASE_URL });

await check('composio npm @composio/client: webhookSubscriptions.rotateSecret = native reveal', async () => {
  const { id, first } = await newEndpoint('sub_npm');
  const rotated = await composio.webhookSubscriptions.rotateSecret(id);
  assert(rotated.id === id, `answered id ${rotated.id}, not ${id}`);
  await expectRevealed(id, rotated.secret, first);
});

await check('composio npm @composio/client: the seed path /api/v3/... through the same client', async () => {
  const { id, first } = await newEndpoint('sub_npm');
  const rotated = await composio.post(`/api/v3/webhook_subscriptions/${encodeURIComponent(id)}/rotate_secret`);
  assert(rotated.id === id, `answered id ${rotated.id}, not ${id}`);
  await expectRevealed(id, rotated.secret, first);
});

await check('composio npm @composio/client: unknown subscription -> NotFoundError 404', () =>
  expectError(
    composio.webhookSubscriptions.rotateSecret('sub_never_created'),
    NotFoundError,
    404,
    'webhook_subscription_not_found',
  ),
);

await check('composio npm @composio/client: member key -> AuthenticationError 401', async () => {
  const { id } = await newEndpoint('sub_npm');
  await expectError(
    composioMember.webhookSubscriptions.rotateSecret(id),
    AuthenticationError,
    401,
    'insufficient_permissions',
  );
});

// --- Composio: composio-client (PyPI), in its own process ----------------------------------
// It prints `ok - …` / `FAIL - …` lines like the checks above.
const py = spawnSync(PYTHON, [join(here, 'composio_client_check.py')], {
  env: process.env,
  encoding: 'utf8',
  timeout: 300_000,
});
const pyLines = (py.stdout || '').split('\n').filter(Boolean);
for (const line of pyLines) {
  console.log(line);
  if (line.startsWith('ok - ')) passed += 1;
  else if (line.startsWith('FAIL - ')) failed += 1;
}
const pyFailed = pyLines.some((l) => l.startsWith('FAIL - '));
const pyPassed = pyLines.some((l) => l.startsWith('ok - '));
if ((py.status !== 0 && !pyFailed) || (!pyPassed && !pyFailed)) {
  failed += 1;
  console.log(
    `FAIL - composio PyPI composio-client: ${PYTHON} exited ${py.status ?? py.signal ?? py.error}\n${py.stderr || ''}`,
  );
}

console.log(`vendor clients: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
