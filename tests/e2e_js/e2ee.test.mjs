// End-to-end encryption against a real dendrite-lite, proved by a real encrypting client:
// matrix-js-sdk with its Rust crypto (matrix-sdk-crypto-wasm, in-memory store: there is
// no IndexedDB in Node).
//
// Run by tests/e2e/test_js_e2ee.py, which starts the server and sets HOMESERVER_URL:
//   node --import ./polyfill.mjs --test --test-reporter=spec e2ee.test.mjs
//
// The steps, their limits and the diagnostics on failure come from harness.mjs.

import assert from "node:assert/strict";

import * as sdk from "matrix-js-sdk";
import { CryptoEvent } from "matrix-js-sdk/lib/crypto-api/index.js";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/recovery-key.js";

import {
    PASSWORD,
    clients,
    http,
    label,
    login,
    newClient,
    register,
    runScenario,
    startSyncing,
    step,
    stepStarted,
    unique,
    waitFor,
    waitForMembership,
} from "./harness.mjs";

const MEGOLM = "m.megolm.v1.aes-sha2";

// ---------------------------------------------------------------------------------------
// What the E2EE scenario adds to the harness's diagnostics

// matrix-js-sdk will not start its sync loop until GET /pushrules/ succeeds (it retries
// forever). Push rules are not part of E2EE and the server may not have them yet: only
// while it answers 404 M_UNRECOGNIZED does the client see an empty rule set instead,
// and the run says so. Once the server serves push rules this does nothing.
const shimmed = new Set();
async function pushRulesShim(entry, response) {
    if (entry.method !== "GET" || !/\/_matrix\/client\/v3\/pushrules\/?$/.test(entry.path)) return null;
    if (response.status !== 404) return null;
    const body = await response
        .clone()
        .json()
        .catch(() => ({}));
    if (body.errcode !== "M_UNRECOGNIZED") return null;
    shimmed.add("GET /_matrix/client/v3/pushrules/ (404 M_UNRECOGNIZED on the server; the client saw {global:{}})");
    entry.shimmed = true;
    entry.logNote = "SHIM: the client saw 200 {global:{}}";
    return new Response(JSON.stringify({ global: {} }), {
        status: 200,
        headers: { "content-type": "application/json" },
    });
}

// A GET /room_keys/version 404 M_NOT_FOUND only says "no backup yet": no fault (nor, as the
// harness knows, is a 401 with a UIA session). A shimmed request is not an E2EE one.
function failureNote(entry) {
    if (entry.shimmed) return "shimmed, not E2EE";
    if (entry.status === 404 && entry.errcode === "M_NOT_FOUND" && entry.path.includes("/room_keys/version"))
        return "expected";
    return null;
}

/** How many one-time keys a POST /keys/upload offers (bob tops his up after a claim). */
function countOneTimeKeys(entry, init) {
    if (entry.path.endsWith("/keys/upload") && typeof init.body === "string") {
        entry.oneTimeKeys = Object.keys(JSON.parse(init.body).one_time_keys ?? {}).length;
    }
}

// The E2EE endpoints this scenario needs. When the server does not know one
// (M_UNRECOGNIZED), the SDK only logs it and retries; waiting on would just time out.
const E2EE_ENDPOINT =
    /\/(keys\/(upload|query|claim|changes|device_signing\/upload|signatures\/upload)|room_keys\/|sendToDevice\/|dehydrated_device)/;

function missingEndpoint(sinceT) {
    const missing = new Map();
    for (const e of http) {
        if (e.t >= sinceT && e.errcode === "M_UNRECOGNIZED" && E2EE_ENDPOINT.test(e.path)) {
            missing.set(`${e.method} ${e.path}`, `${e.status} ${e.response}`);
        }
    }
    if (!missing.size) return null;
    const list = [...missing].map(([request, answer]) => `${request} -> ${answer}`).join("; ");
    return `the server does not implement: ${list}`;
}

// ---------------------------------------------------------------------------------------
// Helpers

/** Authenticated request outside the SDK's models, to check what the server holds. */
function api(client, method, path, { query, body } = {}) {
    return client.http.authedRequest(method, path, query, body);
}

/** A UIA callback for bootstrapCrossSigning: ask for the flows, then m.login.password. */
function passwordAuth(userId) {
    return async (makeRequest) => {
        try {
            return await makeRequest(null);
        } catch (error) {
            if (error?.httpStatus !== 401 || !error.data?.flows) throw error;
            const ok = error.data.flows.some((f) => f.stages?.includes("m.login.password"));
            assert.ok(ok, `device_signing/upload offers no m.login.password flow: ${JSON.stringify(error.data)}`);
            return await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: userId },
                password: PASSWORD,
                session: error.data.session,
            });
        }
    };
}

function timelineEvents(client, roomId) {
    return client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [];
}

function findMessage(client, roomId, body) {
    return (
        timelineEvents(client, roomId).find(
            (ev) => ev.getType() === "m.room.message" && ev.getContent()?.body === body,
        ) ?? null
    );
}

function explainTimeline(client, roomId) {
    return async () => {
        const room = client.getRoom(roomId);
        if (!room) return `${client.getUserId()}/${client.getDeviceId()} has no room ${roomId}`;
        const lines = [
            `timeline of ${roomId} on ${client.getUserId()}/${client.getDeviceId()} (${room.getMyMembership()}):`,
        ];
        for (const ev of timelineEvents(client, roomId).slice(-15)) {
            let text = `  ${ev.getId()} ${ev.getSender()} wire=${ev.getWireType()} type=${ev.getType()}`;
            if (ev.isEncrypted()) text += ` session=${ev.getWireContent().session_id}`;
            if (ev.isBeingDecrypted()) text += " [decrypting]";
            if (ev.isDecryptionFailure()) text += ` [UTD: ${ev.decryptionFailureReason}]`;
            else if (ev.getType() === "m.room.message") text += ` body=${JSON.stringify(ev.getContent().body)}`;
            lines.push(text);
        }
        return lines.join("\n");
    };
}

/** Wait until `client` shows `body` in `roomId`, decrypted if `encrypted`. */
async function waitForMessage(client, roomId, body, { encrypted }) {
    const ev = await waitFor(
        `${client.getUserId()}/${client.getDeviceId()} to ${encrypted ? "decrypt" : "receive"} ${JSON.stringify(body)}`,
        () => findMessage(client, roomId, body),
        { explain: explainTimeline(client, roomId) },
    );
    if (encrypted) {
        assert.equal(ev.getWireType(), "m.room.encrypted", "the message must travel encrypted");
        assert.equal(ev.getWireContent().algorithm, MEGOLM);
    } else {
        assert.equal(ev.getWireType(), "m.room.message");
    }
    return ev;
}

async function send(client, roomId, body) {
    const { event_id: eventId } = await client.sendTextMessage(roomId, body);
    assert.ok(eventId, "send answered no event_id");
    return eventId;
}

async function serverEvent(client, roomId, eventId) {
    return api(client, sdk.Method.Get, `/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`);
}

async function waitForDevice(client, userId, deviceId, downloadUncached) {
    await waitFor(
        `${client.getUserId()}/${client.getDeviceId()} to know device ${deviceId} of ${userId}`,
        async () => {
            const devices = await client.getCrypto().getUserDeviceInfo([userId], downloadUncached);
            return devices.get(userId)?.has(deviceId);
        },
        {
            explain: async () => {
                const devices = await client.getCrypto().getUserDeviceInfo([userId], false);
                const known = JSON.stringify([...(devices.get(userId)?.keys() ?? [])]);
                const query = await api(client, sdk.Method.Post, "/keys/query", {
                    body: { device_keys: { [userId]: [] } },
                });
                const listed = query.device_keys?.[userId]?.[deviceId];
                const queries = http
                    .filter(
                        (e) => e.who === label(client) && e.method === "POST" && e.path.includes("/keys/query"),
                    )
                    .map((e) => `${e.status}`);
                return [
                    `the client knows devices ${known} of ${userId}`,
                    `a raw POST /keys/query now ${listed ? "lists" : "does NOT list"} ${deviceId}` +
                        (listed
                            ? `: ${JSON.stringify(listed).slice(0, 600)}`
                            : ` (lists ${JSON.stringify(Object.keys(query.device_keys?.[userId] ?? {}))})`),
                    `the client's own /keys/query calls: ${queries.length} (statuses ${queries.join(",")})`,
                ].join("\n");
            },
        },
    );
}

// ---------------------------------------------------------------------------------------
// The scenario: steps share this state.

const s = {};
const HARNESS = "harness: register, log in, sync, plain room, unencrypted messages (no crypto)";
const CRYPTO = "crypto: new devices initialise Rust crypto and publish their keys";
const ENCRYPTED = "encrypted room: both send and decrypt each other's messages";
const BACKUP = "alice: cross-signing, secret storage with a recovery key, key backup uploaded";
const RESTORE = "alice on a new device: restore the backup with the recovery key, decrypt history";
const BOB2 = "bob's second device decrypts alice's next message";
const DEHYDRATED = "dehydrated device: alice offline gets bob's key, a new device rehydrates and decrypts";
const MSC3814 = "/_matrix/client/unstable/org.matrix.msc3814.v1";

const SCENARIO = {
    title: "dendrite-lite E2EE with matrix-js-sdk + Rust crypto",
    name: "E2EE",
    file: "e2ee.test.mjs",
    globalTimeoutMs: 300_000,
    onRequest: countOneTimeKeys,
    replaceResponse: pushRulesShim,
    failureNote,
    // The SDK's complaint about the empty rule set of the push rules shim.
    quietLog: /default global \w+ push rule/,
    waitGuard: () => missingEndpoint(stepStarted),
    summaryNotes: () => [...shimmed].map((note) => `SHIM    ${note}`),
};

runScenario(SCENARIO, () => {
    step(HARNESS, [], async () => {
        s.aliceName = unique("alice");
        s.bobName = unique("bob");
        await register(s.aliceName);
        await register(s.bobName);
        // Clients without crypto: this step needs nothing of the E2EE endpoints.
        const alice0 = newClient("alice0", await login(s.aliceName, "alice0"));
        const bob0 = newClient("bob0", await login(s.bobName, "bob0"));
        s.aliceId = alice0.getUserId();
        s.bobId = bob0.getUserId();
        await startSyncing(alice0);
        await startSyncing(bob0);

        const { room_id: roomId } = await alice0.createRoom({
            preset: sdk.Preset.PrivateChat,
            invite: [s.bobId],
            name: "plain",
        });
        await waitFor(`bob0 to be invited to ${roomId}`, () => bob0.getRoom(roomId)?.getMyMembership() === "invite");
        await bob0.joinRoom(roomId);
        await waitForMembership(alice0, roomId, s.bobId, "join");
        await send(alice0, roomId, "plain hello from alice");
        await waitForMessage(bob0, roomId, "plain hello from alice", { encrypted: false });
        await send(bob0, roomId, "plain hello from bob");
        await waitForMessage(alice0, roomId, "plain hello from bob", { encrypted: false });

        // These devices never had keys; log them out so they are not part of what follows.
        for (const client of [alice0, bob0]) {
            client.stopClient();
            await client.logout(true);
        }
    });

    step(CRYPTO, [HARNESS], async () => {
        s.aliceCreds = await login(s.aliceName, "alice1");
        s.bobCreds = await login(s.bobName, "bob1");
        s.secretKeys = new Map(); // key id -> private key, filled by bootstrapSecretStorage
        s.alice = newClient("alice1", s.aliceCreds, {
            cryptoCallbacks: {
                cacheSecretStorageKey: (keyId, _info, key) => s.secretKeys.set(keyId, key),
                getSecretStorageKey: async ({ keys }) => {
                    const keyId = Object.keys(keys).find((id) => s.secretKeys.has(id));
                    return keyId ? [keyId, s.secretKeys.get(keyId)] : null;
                },
            },
        });
        s.bob = newClient("bob1", s.bobCreds);
        await s.alice.initRustCrypto({ useIndexedDB: false });
        await s.bob.initRustCrypto({ useIndexedDB: false });
        assert.ok(s.alice.getCrypto() && s.bob.getCrypto(), "no crypto after initRustCrypto");
        await startSyncing(s.alice);
        await startSyncing(s.bob);

        // Each device published its identity keys (and the server serves them back).
        for (const [client, creds] of [
            [s.alice, s.aliceCreds],
            [s.bob, s.bobCreds],
        ]) {
            const crypto = client.getCrypto();
            const own = await crypto.getOwnDeviceKeys();
            await waitFor(`/keys/query to list ${creds.user_id}/${creds.device_id} with its keys`, async () => {
                const query = await api(client, sdk.Method.Post, "/keys/query", {
                    body: { device_keys: { [creds.user_id]: [] } },
                });
                const device = query.device_keys?.[creds.user_id]?.[creds.device_id];
                return (
                    device?.keys?.[`ed25519:${creds.device_id}`] === own.ed25519 &&
                    device.keys[`curve25519:${creds.device_id}`] === own.curve25519
                );
            });
        }
    });

    step(ENCRYPTED, [CRYPTO], async () => {
        const { room_id: roomId } = await s.alice.createRoom({
            preset: sdk.Preset.PrivateChat,
            invite: [s.bobId],
            name: "secret",
            initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } }],
        });
        s.roomId = roomId;
        await waitFor(`bob to be invited to ${roomId}`, () => s.bob.getRoom(roomId)?.getMyMembership() === "invite");
        await s.bob.joinRoom(roomId);
        await waitForMembership(s.alice, roomId, s.bobId, "join");
        await waitFor("alice's crypto to see the room as encrypted", () =>
            s.alice.getCrypto().isEncryptionEnabledInRoom(roomId),
        );
        await waitFor("bob's crypto to see the room as encrypted", () =>
            s.bob.getCrypto().isEncryptionEnabledInRoom(roomId),
        );
        // Each side must know the other's device (its uploaded keys) to share a room key.
        await waitForDevice(s.alice, s.bobId, s.bobCreds.device_id, true);
        await waitForDevice(s.bob, s.aliceId, s.aliceCreds.device_id, true);

        s.history = ["secret 1 from alice", "secret 2 from bob", "secret 3 from alice"];
        const eventIds = [];
        eventIds.push(await send(s.alice, roomId, s.history[0]));
        await waitForMessage(s.bob, roomId, s.history[0], { encrypted: true });
        eventIds.push(await send(s.bob, roomId, s.history[1]));
        await waitForMessage(s.alice, roomId, s.history[1], { encrypted: true });
        eventIds.push(await send(s.alice, roomId, s.history[2]));
        await waitForMessage(s.bob, roomId, s.history[2], { encrypted: true });

        // The server holds only ciphertext.
        s.sessionIds = new Set();
        for (const eventId of eventIds) {
            const ev = await serverEvent(s.alice, roomId, eventId);
            assert.equal(ev.type, "m.room.encrypted", `server copy of ${eventId} is ${ev.type}`);
            assert.equal(ev.content.algorithm, MEGOLM);
            assert.ok(!JSON.stringify(ev).includes("secret "), "plaintext reached the server");
            s.sessionIds.add(ev.content.session_id);
        }
        assert.equal(s.sessionIds.size, 2, "one megolm session per sender");

        // Bob's /sync reported the claimed key (device_one_time_keys_count) and he topped up.
        const claimed = http.find((e) => e.who === "alice1" && e.path.endsWith("/keys/claim") && e.status === 200);
        await waitFor(
            "bob1 to upload new one-time keys after alice claimed one (device_one_time_keys_count in /sync)",
            () => http.some((e) => e.who === "bob1" && e.t > claimed?.t && e.oneTimeKeys > 0 && e.status === 200),
        );

        // The room keys travelled over Olm: alice claimed one of bob's one-time keys to open
        // the Olm session (bob answers on the same session), both sent to-device messages.
        for (const [who, method, path] of [
            ["alice1", "POST", "/keys/claim"],
            ["alice1", "PUT", "/sendToDevice/m.room.encrypted/"],
            ["bob1", "PUT", "/sendToDevice/m.room.encrypted/"],
        ]) {
            assert.ok(
                http.some((e) => e.who === who && e.method === method && e.path.includes(path) && e.status === 200),
                `${who} made no successful ${method} ${path}`,
            );
        }
    });

    step(BACKUP, [ENCRYPTED], async () => {
        const crypto = s.alice.getCrypto();
        await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(s.aliceId) });
        assert.ok(await crypto.isCrossSigningReady(), "cross-signing not ready after bootstrapCrossSigning");

        // The server now publishes the cross-signing keys and the self-signed device.
        const query = await api(s.alice, sdk.Method.Post, "/keys/query", {
            body: { device_keys: { [s.aliceId]: [] } },
        });
        for (const kind of ["master_keys", "self_signing_keys", "user_signing_keys"]) {
            assert.ok(
                query[kind]?.[s.aliceId],
                `/keys/query has no ${kind} for alice: ${JSON.stringify(query).slice(0, 800)}`,
            );
        }
        const selfSigning = Object.keys(query.self_signing_keys[s.aliceId].keys)[0];
        const device = query.device_keys?.[s.aliceId]?.[s.aliceCreds.device_id];
        assert.ok(
            device?.signatures?.[s.aliceId]?.[selfSigning],
            `alice's device is not signed by her self-signing key: ${JSON.stringify(device)}`,
        );

        s.recoveryKey = await crypto.createRecoveryKeyFromPassphrase();
        assert.ok(s.recoveryKey.encodedPrivateKey, "no encoded recovery key");
        await crypto.bootstrapSecretStorage({
            createSecretStorageKey: async () => s.recoveryKey,
            setupNewSecretStorage: true,
        });
        await crypto.resetKeyBackup();
        const check = await crypto.checkKeyBackupAndEnable();
        assert.ok(check?.backupInfo?.version, `no key backup on the server: ${JSON.stringify(check)}`);
        assert.ok(check.trustInfo.trusted, `the new backup is not trusted: ${JSON.stringify(check.trustInfo)}`);
        assert.ok(await crypto.isSecretStorageReady(), "secret storage not ready");
        s.backupVersion = await crypto.getActiveSessionBackupVersion();
        assert.equal(s.backupVersion, check.backupInfo.version);

        // Both megolm sessions of the room (alice's own, bob's received) reach the server.
        await waitFor(
            `backup version ${s.backupVersion} to hold sessions ${[...s.sessionIds].join(", ")}`,
            async () => {
                const keys = await api(s.alice, sdk.Method.Get, "/room_keys/keys", {
                    query: { version: s.backupVersion },
                });
                const stored = keys.rooms?.[s.roomId]?.sessions ?? {};
                return [...s.sessionIds].every((id) => stored[id]);
            },
            {
                interval: 500,
                explain: async () => {
                    const keys = await api(s.alice, sdk.Method.Get, "/room_keys/keys", {
                        query: { version: s.backupVersion },
                    });
                    return `GET /room_keys/keys?version=${s.backupVersion}: ${JSON.stringify(keys).slice(0, 800)}`;
                },
            },
        );
    });

    step(RESTORE, [BACKUP], async () => {
        const creds = await login(s.aliceName, "alice2");
        assert.notEqual(creds.device_id, s.aliceCreds.device_id);
        const recoveryKey = decodeRecoveryKey(s.recoveryKey.encodedPrivateKey);
        const alice2 = newClient("alice2", creds, {
            cryptoCallbacks: {
                getSecretStorageKey: async ({ keys }) => {
                    const defaultKey = await alice2.secretStorage.getDefaultKeyId();
                    const keyId = keys[defaultKey] ? defaultKey : Object.keys(keys)[0];
                    return [keyId, recoveryKey];
                },
            },
        });
        s.alice2 = alice2;
        await alice2.initRustCrypto({ useIndexedDB: false });
        await startSyncing(alice2);
        await waitFor("alice2 to see the encrypted room", () => alice2.getRoom(s.roomId)?.getMyMembership() === "join");
        const crypto = alice2.getCrypto();

        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        const restored = await crypto.restoreKeyBackup();
        assert.ok(
            restored.imported >= s.sessionIds.size,
            `restoreKeyBackup imported ${restored.imported} of ${restored.total} keys, want >= ${s.sessionIds.size}`,
        );
        for (const body of s.history) {
            await waitForMessage(alice2, s.roomId, body, { encrypted: true });
        }
    });

    step(BOB2, [ENCRYPTED], async () => {
        const creds = await login(s.bobName, "bob2");
        const bob2 = newClient("bob2", creds);
        await bob2.initRustCrypto({ useIndexedDB: false });
        await startSyncing(bob2);
        await waitFor("bob2 to see the encrypted room", () => bob2.getRoom(s.roomId)?.getMyMembership() === "join");
        // Alice learns of the new device through device_lists.changed in her /sync, not by asking.
        await waitForDevice(s.alice, s.bobId, creds.device_id, false);

        const body = "secret 4 from alice, for both of bob's devices";
        await send(s.alice, s.roomId, body);
        await waitForMessage(bob2, s.roomId, body, { encrypted: true });
        await waitForMessage(s.bob, s.roomId, body, { encrypted: true });
    });

    // Runs last: it takes alice's other devices offline.
    step(DEHYDRATED, [BACKUP], async () => {
        const crypto = s.alice.getCrypto();
        assert.ok(await crypto.isDehydrationSupported(), "isDehydrationSupported() is false (GET dehydrated_device)");
        await crypto.startDehydration({ rehydrate: false });
        const dehydrated = await s.alice.http.authedRequest(
            sdk.Method.Get,
            "/dehydrated_device",
            undefined,
            undefined,
            {
                prefix: MSC3814,
            },
        );
        assert.ok(
            dehydrated.device_id && dehydrated.device_data,
            `GET dehydrated_device: ${JSON.stringify(dehydrated)}`,
        );
        // Bob learns of the dehydrated device (device_lists.changed) before alice goes away.
        await waitForDevice(s.bob, s.aliceId, dehydrated.device_id, false);
        const seen = await s.bob.getCrypto().getUserDeviceInfo([s.aliceId], false);
        assert.ok(
            seen.get(s.aliceId).get(dehydrated.device_id).dehydrated,
            "bob does not see the device as dehydrated",
        );

        // Every device of alice is offline; only the dehydrated one can take bob's key.
        for (const label of ["alice1", "alice2"]) clients.find((c) => c.label === label)?.client.stopClient();
        // A fresh megolm session, so no key backup can already hold it.
        await s.bob.getCrypto().forceDiscardSession(s.roomId);
        const body = "secret 5 from bob, while alice is offline";
        const sent = await serverEvent(s.bob, s.roomId, await send(s.bob, s.roomId, body));
        const sessionId = sent.content.session_id;
        assert.ok(!s.sessionIds.has(sessionId), "bob did not start a new megolm session");
        // (alice1 only stopped syncing: its token still reads the backup.)
        const backup = await api(s.alice, sdk.Method.Get, "/room_keys/keys", { query: { version: s.backupVersion } });
        assert.ok(
            !backup.rooms?.[s.roomId]?.sessions?.[sessionId],
            `bob's new session ${sessionId} is already in the backup`,
        );

        const creds = await login(s.aliceName, "alice3");
        const recoveryKey = decodeRecoveryKey(s.recoveryKey.encodedPrivateKey);
        const alice3 = newClient("alice3", creds, {
            cryptoCallbacks: {
                getSecretStorageKey: async ({ keys }) => {
                    const defaultKey = await alice3.secretStorage.getDefaultKeyId();
                    return [keys[defaultKey] ? defaultKey : Object.keys(keys)[0], recoveryKey];
                },
            },
        });
        await alice3.initRustCrypto({ useIndexedDB: false });
        await startSyncing(alice3);
        const crypto3 = alice3.getCrypto();
        // Importing the cross-signing keys needs alice's public identity, which the SDK
        // fetches (/keys/query) in the background after its first sync; on a busy machine
        // bootstrapCrossSigning could run before that and fail ("No public identity
        // found"). Ask for it first, as it would be fetched anyway.
        assert.ok(
            await crypto3.userHasCrossSigningKeys(s.aliceId, true),
            "alice3 does not see alice's cross-signing keys",
        );
        // The recovery key unlocks the cross-signing keys, then the dehydration key.
        await crypto3.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(s.aliceId) });
        let roomKeys = 0;
        let rehydrationError = null;
        alice3.on(CryptoEvent.RehydrationProgress, (count) => {
            roomKeys = count;
        });
        alice3.on(CryptoEvent.RehydrationError, (message) => {
            rehydrationError = message;
        });
        // startDehydration logs and swallows rehydration errors; they are reported below.
        await crypto3.startDehydration();
        assert.ok(
            roomKeys >= 1,
            `rehydration received ${roomKeys} room keys from the dehydrated device's to-device events` +
                (rehydrationError ? `; RehydrationError: ${rehydrationError}` : "") +
                (missingEndpoint(stepStarted) ? `; ${missingEndpoint(stepStarted)}` : ""),
        );
        await waitForMessage(alice3, s.roomId, body, { encrypted: true });
        // Only the dehydrated device had that key: alice3 never held the backup key.
        assert.equal(await crypto3.getSessionBackupPrivateKey(), null, "alice3 could have read the key backup");
    });
});
