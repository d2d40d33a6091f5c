// A real OpenID Connect provider (the certified `oidc-provider` package) for the tests of
// dendrite-lite's upstream providers. Started by tests/e2e/test_oauth_upstream.py:
//   node provider.mjs '<json config>'
// config: { port, clients: [...oidc-provider client metadata], accounts: { sub: claims } }
// The dev interactions of oidc-provider render its own login form (any password is
// accepted; the login names the account) and consent form; the tests submit them.
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const accounts = config.accounts;

const provider = new Provider(`http://127.0.0.1:${config.port}`, {
  clients: config.clients,
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  // Claims of the requested scopes go into the id_token itself, not only /userinfo.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['dendrite-lite-tests-only'] },
});
provider.proxy = false;
// Silence the expected development-mode warnings; report errors on stderr.
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${config.port}`);
});
