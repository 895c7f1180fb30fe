// An OpenID provider on loopback for the sign-in tests: npm's oidc-provider (a certified
// implementation) with its development login pages, where any name signs in. A few control
// routes let a test change what it does between sign-ins:
//   POST /control/rotate      signs with a new key from now on (the old one leaves the JWKS)
//   POST /control/tamper      the next token answer carries an ID token with a broken signature
//   POST /control/issuer?to=U calls itself U from now on (discovery and ID tokens)
// Settings from the environment: OIDC_TEST_PORT, OIDC_TEST_ISSUER, OIDC_TEST_CLIENT_ID,
// OIDC_TEST_CLIENT_SECRET, OIDC_TEST_REDIRECT_URI, OIDC_TEST_ACCOUNTS (JSON: login -> claims),
// and TEST_NODE_MODULES, where oidc-provider is installed (scripts/test-services.sh).
import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const installed = createRequire(`${process.env.TEST_NODE_MODULES}/`).resolve('oidc-provider');
const { default: Provider } = await import(pathToFileURL(installed).href);

const env = process.env;
const accounts = JSON.parse(env.OIDC_TEST_ACCOUNTS || '{}');
let issuer = env.OIDC_TEST_ISSUER;
let key = signingKey();
let tamperNext = false;
let provider = build();

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

// Claims for a login: those OIDC_TEST_ACCOUNTS gives it, else a verified address of its own.
function claimsOf(login) {
  return { email: `${login}@example.com`, email_verified: true, groups: [], ...accounts[login] };
}

function build() {
  const made = new Provider(issuer, {
    clients: [{
      client_id: env.OIDC_TEST_CLIENT_ID,
      client_secret: env.OIDC_TEST_CLIENT_SECRET,
      redirect_uris: [env.OIDC_TEST_REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    jwks: { keys: [key] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, name: id, ...claimsOf(id) }),
    }),
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
  });
  made.proxy = false;
  made.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && tamperNext && ctx.body?.id_token) {
      tamperNext = false;
      const token = ctx.body.id_token;
      const last = token.at(-2) === 'A' ? 'B' : 'A';
      ctx.body = { ...ctx.body, id_token: `${token.slice(0, -2)}${last}${token.at(-1)}` };
    }
  });
  return made;
}

async function control(request, response) {
  const url = new URL(request.url, 'http://control');
  if (url.pathname === '/control/rotate') {
    key = signingKey();
  } else if (url.pathname === '/control/tamper') {
    tamperNext = true;
  } else if (url.pathname === '/control/issuer') {
    issuer = url.searchParams.get('to');
  } else {
    response.writeHead(404).end();
    return;
  }
  provider = build();
  response.writeHead(204).end();
}

const server = http.createServer((request, response) => {
  if (request.url.startsWith('/control/') && request.method === 'POST') {
    control(request, response).catch((error) => response.writeHead(500).end(String(error)));
  } else {
    provider.callback()(request, response);
  }
});
server.listen(Number(env.OIDC_TEST_PORT), '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} on 127.0.0.1:${env.OIDC_TEST_PORT}`);
});
