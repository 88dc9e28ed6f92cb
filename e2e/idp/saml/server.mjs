// An independent SAML 2.0 IdP for Gatehouse's end-to-end tests, built on
// samlify (with the libxml2 schema validator from
// @authenio/samlify-node-xmllint, so every AuthnRequest is checked against
// the SAML XSDs). NEVER FOR PRODUCTION: it signs in a fixed test account
// without asking anything.
//
// It listens on 127.0.0.1 (PORT, default 0 = any free port) and prints one
// line "listening <base URL>" on stdout once it serves. Settings, from the
// environment:
//
//   SP_METADATA_URL or SP_METADATA_FILE   the service provider's metadata
//                                         (fetched/read at each sign-in, so
//                                         the SP may start after the IdP)
//   IDP_CERT_FILE, IDP_KEY_FILE           PEM certificate and private key
//                                         the IdP signs with
//   ENCRYPT_ASSERTION=1                   encrypt assertions to the SP (a
//                                         request can also ask with the
//                                         header "X-Test-Encrypt: 1")
//   SINGLE_LOGOUT=1                       advertise and serve single logout
//                                         (/slo, /test/logout-request);
//                                         without it the metadata lists no
//                                         SingleLogoutService and the SP
//                                         signs out locally only
//   MEMBER_OF                             the test account's groups,
//                                         comma-separated (default
//                                         "staff,it-admins")
//
// Endpoints:
//
//   GET  /metadata   the IdP metadata (entityID <base>/metadata)
//   GET  /sso        HTTP-Redirect binding: the AuthnRequest must be signed
//   POST /sso        HTTP-POST binding: likewise (enveloped signature)
//   GET  /slo        single logout, HTTP-Redirect binding: a LogoutRequest
//                    from the SP (answered with a signed LogoutResponse by
//                    the same binding) or the SP's LogoutResponse to a
//                    LogoutRequest made by POST /test/logout-request
//   POST /slo        likewise, HTTP-POST binding
//   POST /test/logout-request?binding=redirect|post&nameID=..&sessionIndex=..&relayState=..
//                    makes an IdP-initiated LogoutRequest to the SP (signed;
//                    NOT a real IdP feature: tests drive it), answering the
//                    JSON {"id", "url"} (redirect) or {"id", "url",
//                    "SAMLRequest", "RelayState"} (post)
//
// Every /slo message must be signed (query signature for HTTP-Redirect,
// enveloped XML signature for HTTP-POST). With "Accept: application/json"
// /slo answers with JSON: for a LogoutRequest {"id", "nameID",
// "sessionIndex", "issuer", "url"} plus, for post, {"SAMLResponse",
// "RelayState"} (the LogoutResponse to deliver to the SP); for a
// LogoutResponse {"inResponseTo", "status", "relayState"}, after checking
// it answers a LogoutRequest this IdP made (each answered once). Otherwise
// it answers a browser: a redirect to (or an auto-submitting form for) the
// LogoutResponse, or a "Signed out" page.
//
// /sso answers at once for the test account: an auto-submitting HTML form
// to the SP's ACS, or, with "Accept: application/json", the JSON
// {"acs", "SAMLResponse", "RelayState"} for tests that post it themselves.
// The assertion is signed; the NameID is "alice-0001" (persistent), with
// the attributes mail (alice@example.com), displayName (Alice Example) and
// memberOf (staff, it-admins, or MEMBER_OF). The AuthnContextClassRef is
// PasswordProtectedTransport, or the REFEDS MFA class when the request asks
// for it. A test can send "X-Test-Audience: <entity id>" to have the
// assertion name another audience (a negative case).
//
// The schema validator (libxml2 compiled to JavaScript) takes some 20
// seconds to initialise; it is warmed up before "listening" is printed.
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import * as samlify from 'samlify';
import * as validator from '@authenio/samlify-node-xmllint';

samlify.setSchemaValidator(validator);

const port = Number(process.env.PORT || 0);
const certPEM = fs.readFileSync(required('IDP_CERT_FILE'), 'utf8');
const keyPEM = fs.readFileSync(required('IDP_KEY_FILE'), 'utf8');
const encrypt = process.env.ENCRYPT_ASSERTION === '1';
const singleLogout = process.env.SINGLE_LOGOUT === '1';

const user = {
  nameID: 'alice-0001',
  mail: 'alice@example.com',
  displayName: 'Alice Example',
  memberOf: (process.env.MEMBER_OF ?? 'staff,it-admins').split(',').map((g) => g.trim()).filter(Boolean),
};
const PWD = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
const MFA = 'https://refeds.org/profile/mfa';

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`saml idp: ${name} is required`);
    process.exit(2);
  }
  return v;
}

function xmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]);
}

async function spMetadata() {
  if (process.env.SP_METADATA_FILE) {
    return fs.readFileSync(process.env.SP_METADATA_FILE, 'utf8');
  }
  const url = required('SP_METADATA_URL');
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) {
    throw new Error(`SP metadata ${url}: HTTP ${res.status}`);
  }
  return res.text();
}

let base; // http://127.0.0.1:PORT, once listening
let plainIdP; // signs assertions
let encIdP; // signs and encrypts them

function makeIdP(encrypt) {
  return samlify.IdentityProvider({
    entityID: `${base}/metadata`,
    signingCert: certPEM,
    privateKey: keyPEM,
    wantAuthnRequestsSigned: true,
    isAssertionEncrypted: encrypt,
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    nameIDFormat: ['urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'],
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${base}/sso` },
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: `${base}/sso` },
    ],
    singleLogoutService: singleLogout
      ? [
          { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${base}/slo` },
          { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: `${base}/slo` },
        ]
      : [],
    // Logout messages from the SP must be signed.
    wantLogoutRequestSigned: true,
    wantLogoutResponseSigned: true,
  });
}

// sloSP is the SP as seen for single logout: it wants the IdP's logout
// messages signed (samlify signs what the target entity asks for).
async function sloSP() {
  return samlify.ServiceProvider({ metadata: await spMetadata(), wantLogoutRequestSigned: true, wantLogoutResponseSigned: true });
}

// pendingLogouts are the IDs of LogoutRequests this IdP made and not yet
// seen answered.
const pendingLogouts = new Set();

// redirectOctets rebuilds the octet string a redirect-binding signature
// covers, from the raw query, in the order the binding fixes.
function redirectOctets(url, param) {
  const raw = url.search.slice(1).split('&');
  const pick = (k) => raw.find((p) => p.startsWith(k + '='));
  return [param, 'RelayState', 'SigAlg'].map(pick).filter(Boolean).join('&');
}

async function testLogoutRequest(req, res, url) {
  const binding = url.searchParams.get('binding') === 'post' ? 'post' : 'redirect';
  const sp = await sloSP();
  const who = { logoutNameID: url.searchParams.get('nameID') || user.nameID, sessionIndex: url.searchParams.get('sessionIndex') || undefined };
  const relayState = url.searchParams.get('relayState') || '';
  const out = plainIdP.createLogoutRequest(sp, binding, who, { relayState });
  pendingLogouts.add(out.id);
  console.error(`slo: made LogoutRequest ${out.id} (${binding}) for ${who.logoutNameID}`);
  if (binding === 'redirect') {
    send(res, 200, 'application/json', JSON.stringify({ id: out.id, url: out.context }));
  } else {
    send(res, 200, 'application/json', JSON.stringify({ id: out.id, url: out.entityEndpoint, SAMLRequest: out.context, RelayState: out.relayState }));
  }
}

async function slo(req, res, url) {
  const sp = await sloSP();
  const binding = req.method === 'GET' ? 'redirect' : 'post';
  const fields = binding === 'redirect' ? Object.fromEntries(url.searchParams) : Object.fromEntries(new URLSearchParams(await readBody(req)));
  const request = (param) => (binding === 'redirect' ? { query: fields, octetString: redirectOctets(url, param) } : { body: fields });
  if (fields.SAMLResponse) {
    const parsed = await plainIdP.parseLogoutResponse(sp, binding, request('SAMLResponse'));
    const { inResponseTo, destination } = parsed.extract.response;
    if (!pendingLogouts.delete(inResponseTo)) {
      throw new Error(`LogoutResponse to unknown request ${inResponseTo}`);
    }
    if (destination !== `${base}/slo`) {
      throw new Error(`LogoutResponse Destination ${destination}`);
    }
    const status = (parsed.samlContent.match(/StatusCode Value="([^"]+)"/) || [])[1];
    console.error(`slo: LogoutResponse to ${inResponseTo} (${binding}): ${status}`);
    if (!wantsJSON(req)) {
      send(res, 200, 'text/html; charset=utf-8', '<!doctype html><html><body><h1>Signed out at the IdP</h1></body></html>');
      return;
    }
    send(res, 200, 'application/json', JSON.stringify({ inResponseTo, status, relayState: fields.RelayState ?? '' }));
    return;
  }
  const parsed = await plainIdP.parseLogoutRequest(sp, binding, request('SAMLRequest'));
  const ex = parsed.extract;
  if (ex.request.destination !== `${base}/slo`) {
    throw new Error(`LogoutRequest Destination ${ex.request.destination}`);
  }
  const relayState = fields.RelayState ?? '';
  const out = plainIdP.createLogoutResponse(sp, parsed, binding, { relayState });
  console.error(`slo: LogoutRequest ${ex.request.id} (${binding}) for ${ex.nameID}, session ${ex.sessionIndex}`);
  if (!wantsJSON(req)) {
    if (binding === 'redirect') {
      res.writeHead(303, { Location: out.context, 'Cache-Control': 'no-store' });
      res.end();
    } else {
      autoPost(res, out.entityEndpoint, 'SAMLResponse', out.context, relayState);
    }
    return;
  }
  const answer = { id: ex.request.id, nameID: ex.nameID, sessionIndex: ex.sessionIndex, issuer: ex.issuer };
  if (binding === 'redirect') {
    answer.url = out.context;
  } else {
    Object.assign(answer, { url: out.entityEndpoint, SAMLResponse: out.context, RelayState: relayState });
  }
  send(res, 200, 'application/json', JSON.stringify(answer));
}

// responseXML is the whole Response, unsigned: samlify signs the assertion
// (the SP metadata says WantAssertionsSigned) and encrypts it if asked.
function responseXML(idp, sp, request, audience, classRef) {
  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000).toISOString();
  const iso = now.toISOString();
  const acs = sp.entityMeta.getAssertionConsumerService('post');
  const id = '_' + crypto.randomBytes(20).toString('hex');
  const aid = '_' + crypto.randomBytes(20).toString('hex');
  const e = xmlEscape;
  const attr = (name, values) =>
    `<saml:Attribute Name="${e(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">` +
    values.map((v) => `<saml:AttributeValue xsi:type="xs:string">${e(v)}</saml:AttributeValue>`).join('') +
    `</saml:Attribute>`;
  const context =
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id}" Version="2.0" IssueInstant="${iso}" Destination="${e(acs)}" InResponseTo="${e(request.id)}">` +
    `<saml:Issuer>${e(idp.entityMeta.getEntityID())}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="${aid}" Version="2.0" IssueInstant="${iso}">` +
    `<saml:Issuer>${e(idp.entityMeta.getEntityID())}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">${e(user.nameID)}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${later}" Recipient="${e(acs)}" InResponseTo="${e(request.id)}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${iso}" NotOnOrAfter="${later}"><saml:AudienceRestriction><saml:Audience>${e(audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso}" SessionIndex="${aid}"><saml:AuthnContext><saml:AuthnContextClassRef>${e(classRef)}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    `<saml:AttributeStatement>${attr('mail', [user.mail])}${attr('displayName', [user.displayName])}${attr('memberOf', user.memberOf)}</saml:AttributeStatement>` +
    `</saml:Assertion></samlp:Response>`;
  return { id, context };
}

async function sso(req, res, url) {
  const sp = samlify.ServiceProvider({ metadata: await spMetadata() });
  const idp = encrypt || req.headers['x-test-encrypt'] === '1' ? encIdP : plainIdP;
  let parsed;
  if (req.method === 'GET') {
    // The redirect binding signs the raw query string: rebuild it in the
    // order the binding fixes, from the values as they were sent.
    const raw = url.search.slice(1).split('&');
    const pick = (k) => raw.find((p) => p.startsWith(k + '='));
    const octetString = ['SAMLRequest', 'RelayState', 'SigAlg'].map(pick).filter(Boolean).join('&');
    const query = Object.fromEntries(url.searchParams);
    parsed = await idp.parseLoginRequest(sp, 'redirect', { query, octetString });
  } else {
    const body = Object.fromEntries(new URLSearchParams(await readBody(req)));
    parsed = await idp.parseLoginRequest(sp, 'post', { body });
  }
  const request = parsed.extract.request;
  const relayState = (req.method === 'GET' ? url.searchParams.get('RelayState') : null) ?? parsed.extract.relayState ?? '';
  const classRef = parsed.samlContent.includes(MFA) ? MFA : PWD;
  const audience = req.headers['x-test-audience'] || sp.entityMeta.getEntityID();
  const out = await idp.createLoginResponse(sp, { extract: { request } }, 'post', { email: user.mail }, {
    relayState,
    customTagReplacement: () => responseXML(idp, sp, request, audience, classRef),
  });
  const acs = out.entityEndpoint;
  console.error(`sso: answered request ${request.id} for ${sp.entityMeta.getEntityID()} (audience ${audience}, ${classRef})`);
  if (wantsJSON(req)) {
    send(res, 200, 'application/json', JSON.stringify({ acs, SAMLResponse: out.context, RelayState: relayState }));
    return;
  }
  autoPost(res, acs, 'SAMLResponse', out.context, relayState);
}

function wantsJSON(req) {
  return (req.headers.accept || '').includes('application/json');
}

// autoPost answers a browser with a form posting name=value (and the
// RelayState) to action, submitted at once.
function autoPost(res, action, name, value, relayState) {
  const e = xmlEscape;
  send(res, 200, 'text/html; charset=utf-8',
    `<!doctype html><html><body><form method="post" action="${e(action)}">` +
    `<input type="hidden" name="${e(name)}" value="${e(value)}">` +
    (relayState ? `<input type="hidden" name="RelayState" value="${e(relayState)}">` : '') +
    `<button type="submit">Continue</button></form><script>document.forms[0].submit()</script></body></html>`);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      data += c;
      if (data.length > 1 << 20) {
        reject(new Error('request body too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, base);
  try {
    if (req.method === 'GET' && url.pathname === '/metadata') {
      send(res, 200, 'application/samlmetadata+xml', plainIdP.getMetadata());
    } else if ((req.method === 'GET' || req.method === 'POST') && url.pathname === '/sso') {
      await sso(req, res, url);
    } else if (singleLogout && (req.method === 'GET' || req.method === 'POST') && url.pathname === '/slo') {
      await slo(req, res, url);
    } else if (singleLogout && req.method === 'POST' && url.pathname === '/test/logout-request') {
      await testLogoutRequest(req, res, url);
    } else {
      send(res, 404, 'text/plain', 'not found\n');
    }
  } catch (err) {
    // samlify rejects with bare strings or Errors.
    const msg = err && err.message ? err.message : String(err);
    console.error(`${req.method} ${url.pathname}: ${msg}`);
    if (!res.headersSent) {
      send(res, 400, 'application/json', JSON.stringify({ error: msg }));
    }
  }
});

// Warm the validator up (its first run compiles libxml2), then listen.
await validator.validate('<samlp:Status xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>');
server.listen(port, '127.0.0.1', () => {
  base = `http://127.0.0.1:${server.address().port}`;
  plainIdP = makeIdP(false);
  encIdP = makeIdP(true);
  console.log(`listening ${base}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
