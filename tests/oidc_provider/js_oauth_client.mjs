// matrix-js-sdk's OAuth 2.0 helpers against dendrite-lite, driven by
// tests/e2e/test_oauth_js.py: node --import ../e2e_js/polyfill.mjs js_oauth_client.mjs '<json>'
// The SDK comes from tests/e2e_js/node_modules (installed by `make test` for the E2EE test).
// It prints one JSON line per step; where a user must act in a browser it prints what the
// user gets and reads one line from stdin (the URL the browser arrived at, or "done").
import readline from 'node:readline';

const sdk = new URL('../e2e_js/node_modules/matrix-js-sdk/lib/', import.meta.url);
const { createClient } = await import(new URL('matrix.js', sdk));
const { OAuth2, generateScope } = await import(new URL('oauth/index.js', sdk));

const config = JSON.parse(process.argv[2]);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (step, value) => console.log(JSON.stringify({ step, ...value }));
const ask = async () => (await lines.next()).value;

const anonymous = createClient({ baseUrl: config.baseUrl });
const metadata = await anonymous.getAuthMetadata();
say('metadata', { issuer: metadata.issuer, grants: metadata.grant_types_supported });

const clientId = await OAuth2.registerClient(metadata, {
  client_name: 'matrix-js-sdk test client',
  client_uri: 'https://app.example.org/',
  redirect_uris: [config.redirectUri],
  application_type: 'web',
});
say('registered', { clientId });

const oauth = new OAuth2(metadata, { clientId, deviceId: config.deviceId });
const url = await oauth.generateAuthorizationCodeGrantUrl('js-state', config.redirectUri);
say('authorize', { url });
const callback = new URL(await ask());
const params = new URLSearchParams(callback.hash.slice(1));
if (params.get('state') !== 'js-state') throw new Error('state mismatch');
const tokens = await oauth.completeAuthorizationCodeGrant(params.get('code'), config.redirectUri);
const client = createClient({ baseUrl: config.baseUrl, accessToken: tokens.access_token });
const who = await client.whoami();
say('tokens', { userId: who.user_id, deviceId: who.device_id, scope: tokens.scope });

const refreshed = await oauth.performRefreshTokenGrant(tokens.refresh_token);
const again = createClient({ baseUrl: config.baseUrl, accessToken: refreshed.access_token });
say('refreshed', { userId: (await again.whoami()).user_id, changed: refreshed.access_token !== tokens.access_token });

await oauth.revokeToken(refreshed.access_token, 'access_token');
let revoked = false;
try {
  await again.whoami();
} catch (err) {
  revoked = err.httpStatus === 401 && err.errcode === 'M_UNKNOWN_TOKEN';
}
say('revoked', { revoked });

const device = new OAuth2(metadata, { clientId, deviceId: config.tvDeviceId });
const session = await device.startDeviceAuthorizationGrant(generateScope(config.tvDeviceId));
say('device', { userCode: session.user_code, uri: session.verification_uri_complete });
const granted = await device.waitForDeviceAuthorizationGrant(session);
if (!granted.access_token) throw new Error(`device grant failed: ${JSON.stringify(granted)}`);
const tv = createClient({ baseUrl: config.baseUrl, accessToken: granted.access_token });
say('device_tokens', { deviceId: (await tv.whoami()).device_id });
process.exit(0);
