// An independent OpenID Provider for Gatehouse's end-to-end tests, built
// on panva's certified oidc-provider. NEVER FOR PRODUCTION: it signs in a
// fixed test account without asking anything.
//
// It listens on 127.0.0.1 (PORT, default 0 = any free port) and prints one
// line "listening <issuer>" on stdout once it serves. One confidential
// client, from the environment:
//
//   CLIENT_ID, CLIENT_SECRET   the client's credentials
//   REDIRECT_URI               its redirect URI (comma-separated for several)
//   POST_LOGOUT_REDIRECT_URI   where RP-initiated logout may return (optional)
//   BACKCHANNEL_LOGOUT_URI     where the OP posts back-channel logout tokens
//                              (optional; sid required)
//   ACCESS_TOKEN_TTL           access token lifetime in seconds (default 600)
//
// Interactions are answered at once: GET /interaction/:uid signs in the
// test account (login) and grants what the client asked (consent). The
// account's claims: sub "alice-0001", email alice@example.com (verified),
// name "Alice Example", groups [staff, it-admins]. When the authorization
// request asks acr_values, the first one listed in ACR_GRANTED (default
// "urn:gatehouse:test:mfa") is granted with amr [pwd, otp]; otherwise the
// sign-in is acr "urn:gatehouse:test:pwd", amr [pwd].
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const clientId = process.env.CLIENT_ID || 'gatehouse';
const clientSecret = process.env.CLIENT_SECRET || 'gatehouse-test-secret-0123456789abcdef';
const redirectURIs = (process.env.REDIRECT_URI || 'http://127.0.0.1:8080/.gatehouse/callback/idp').split(',');
const postLogout = (process.env.POST_LOGOUT_REDIRECT_URI || '').split(',').filter(Boolean);
const acrGranted = (process.env.ACR_GRANTED || 'urn:gatehouse:test:mfa').split(' ').filter(Boolean);
const acrDefault = 'urn:gatehouse:test:pwd';
const backchannel = process.env.BACKCHANNEL_LOGOUT_URI || '';
const accessTTL = Number(process.env.ACCESS_TOKEN_TTL || 600);

const accounts = {
  'alice-0001': {
    sub: 'alice-0001',
    email: 'alice@example.com',
    email_verified: true,
    name: 'Alice Example',
    groups: ['staff', 'it-admins'],
  },
};

// A fresh signing key per run (RS256), so no key material is committed.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-' + crypto.randomBytes(4).toString('hex'), use: 'sig', alg: 'RS256' };

let provider; // set once the port is known: the issuer names it

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
      await interaction(req, res);
      return;
    }
    provider.callback()(req, res);
  } catch (err) {
    console.error('op error:', err);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.end('op error: ' + err.message);
    }
  }
});

// interaction completes login and consent without a screen.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    const asked = String(params.acr_values || '').split(' ').filter(Boolean);
    const acr = asked.find((a) => acrGranted.includes(a));
    await provider.interactionFinished(req, res, {
      login: {
        accountId: 'alice-0001',
        acr: acr || acrDefault,
        amr: acr ? ['pwd', 'otp'] : ['pwd'],
        ts: Math.floor(Date.now() / 1000),
      },
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
    return;
  }
  res.statusCode = 400;
  res.end('unsupported prompt ' + prompt.name);
}

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectURIs,
      post_logout_redirect_uris: postLogout,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      require_auth_time: true,
      ...(backchannel ? { backchannel_logout_uri: backchannel, backchannel_logout_session_required: true } : {}),
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // acr, amr and auth_time ride with the openid scope, so every ID
    // token says how the person signed in (step-up checks read them).
    claims: {
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    acrValues: [acrDefault, ...acrGranted],
    // Put the scopes' claims into the ID token too (the code flow would
    // otherwise leave them to userinfo only), so both paths are exercised.
    conformIdTokenClaims: false,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
    },
    interactions: { url: (_ctx, i) => `/interaction/${i.uid}` },
    // The OP's outgoing requests (back-channel logout tokens) go to the
    // gateway on 127.0.0.1, which oidc-provider's SSRF guard refuses as a
    // special-use address. This test OP drops the guard; a real OP keeps it.
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
    async findAccount(_ctx, id) {
      const a = accounts[id];
      if (!a) return undefined;
      return { accountId: id, async claims() { return { ...a }; } };
    },
    ttl: {
      AccessToken: accessTTL, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600, RefreshToken: 3600,
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('op server_error:', err));
  provider.on('backchannel.error', (_ctx, err, client) => console.error('op backchannel.error:', client.clientId, err));
  provider.on('backchannel.success', (_ctx, client) => console.error('op backchannel.success:', client.clientId));
  provider.on('end_session.success', () => console.error('op end_session.success'));
  console.log(`listening ${issuer}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
