// Simplified sliding sync (MSC4186) against a real dendrite-lite, driven by matrix-js-sdk
// the way Element Web drives it: a `SlidingSync` with a room list, handed to
// `startClient({ slidingSync })`.
//
// Run by tests/e2e/test_js_sliding_sync.py, which starts the server and sets HOMESERVER_URL:
//   node --import ./polyfill.mjs --test --test-reporter=spec sliding_sync.mjs
//
// Steps run in order and share state. Every wait has a time limit; a failing step prints
// the sliding sync requests that failed and the tail of the SDK's log.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { format } from "node:util";

import * as sdk from "matrix-js-sdk";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";

const BASE_URL = process.env.HOMESERVER_URL;
const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 20_000);
const PASSWORD = "correct horse battery staple";
const SS_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

const logLines = [];
for (const level of ["trace", "debug", "info", "log", "warn", "error"]) {
    console[level] = (...args) => {
        if (logLines.length > 5000) logLines.shift();
        logLines.push(`${level}: ${format(...args)}`);
    };
}
const failures = [];

function tracedFetch(who) {
    return async (input, init = {}) => {
        const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
        const response = await fetch(input, init);
        if (response.status >= 400 && url.pathname === SS_PATH) {
            failures.push(`${who} ${url.pathname}${url.search}: ${response.status} ${await response.clone().text()}`);
        }
        return response;
    };
}

function diagnostics() {
    return `sliding sync failures:\n${failures.join("\n")}\n--- SDK log tail:\n${logLines.slice(-40).join("\n")}`;
}

async function waitFor(what, check) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${diagnostics()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

async function api(token, method, path, body) {
    const response = await fetch(`${BASE_URL}/_matrix/client/v3${path}`, {
        method,
        headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
    return data;
}

async function register(prefix) {
    const username = `${prefix}-${randomBytes(4).toString("hex")}`;
    return api(null, "POST", "/register", {
        username,
        password: PASSWORD,
        auth: { type: "m.login.dummy" },
        initial_device_display_name: "js sliding sync",
    });
}

// Element Web's room list (matrix-react-sdk SlidingSyncManager): the top rooms by
// recency, with the state the room list shows.
const LIST = {
    ranges: [[0, 19]],
    timeline_limit: 10,
    required_state: [
        ["m.room.join_rules", ""],
        ["m.room.avatar", ""],
        ["m.room.tombstone", ""],
        ["m.room.encryption", ""],
        ["m.room.create", ""],
        ["m.room.topic", ""],
        ["m.room.name", ""],
        ["m.room.member", "$ME"],
        ["m.room.member", "$LAZY"],
        ["m.room.power_levels", ""],
    ],
};
const SUBSCRIPTION = { timeline_limit: 50, required_state: [["*", "*"]] };

const state = {};

describe("matrix-js-sdk SlidingSync against dendrite-lite", { concurrency: false }, () => {
    after(() => {
        state.slidingSync?.stop();
        state.bob?.stopClient();
    });

    test("two users, a named room and messages", async () => {
        assert.ok(BASE_URL, "HOMESERVER_URL is not set");
        state.alice = await register("js-ss-alice");
        state.bobCreds = await register("js-ss-bob");
        const created = await api(state.alice.access_token, "POST", "/createRoom", {
            name: "JS sliding room",
            invite: [state.bobCreds.user_id],
        });
        state.roomId = created.room_id;
        await api(state.bobCreds.access_token, "POST", `/join/${encodeURIComponent(state.roomId)}`, {});
        state.sent = [];
        for (let i = 0; i < 3; i++) {
            const txn = `m${i}-${randomBytes(3).toString("hex")}`;
            const res = await api(
                state.alice.access_token,
                "PUT",
                `/rooms/${encodeURIComponent(state.roomId)}/send/m.room.message/${txn}`,
                { msgtype: "m.text", body: `hello ${i}` },
            );
            state.sent.push(res.event_id);
        }
    });

    test("startClient({ slidingSync }) builds the room from the room list", async () => {
        const { bobCreds } = state;
        state.bob = sdk.createClient({
            baseUrl: BASE_URL,
            userId: bobCreds.user_id,
            deviceId: bobCreds.device_id,
            accessToken: bobCreds.access_token,
            fetchFn: tracedFetch("bob"),
        });
        state.responses = 0;
        state.slidingSync = new SlidingSync(BASE_URL, new Map([["room_list", LIST]]), SUBSCRIPTION, state.bob, 10_000);
        state.slidingSync.on(SlidingSyncEvent.Lifecycle, (lifecycle, resp, err) => {
            if (lifecycle === SlidingSyncState.Complete) state.responses += 1;
            if (err) failures.push(`lifecycle error: ${err}`);
        });
        await state.bob.startClient({ slidingSync: state.slidingSync });
        const room = await waitFor("bob's room from sliding sync", () => state.bob.getRoom(state.roomId));
        await waitFor("the room name", () => room.name === "JS sliding room");
        await waitFor("the three messages in the live timeline", () => {
            const ids = room.getLiveTimeline().getEvents().map((e) => e.getId());
            return state.sent.every((id) => ids.includes(id));
        });
        assert.equal(room.getJoinedMemberCount(), 2);
        assert.equal(room.getMyMembership(), "join");
        assert.equal(state.slidingSync.getListData("room_list").joinedCount, 1);
    });

    test("a message sent by the other user arrives live", async () => {
        const room = state.bob.getRoom(state.roomId);
        const txn = `live-${randomBytes(3).toString("hex")}`;
        const res = await api(
            state.alice.access_token,
            "PUT",
            `/rooms/${encodeURIComponent(state.roomId)}/send/m.room.message/${txn}`,
            { msgtype: "m.text", body: "live message" },
        );
        const event = await waitFor("the live message", () =>
            room
                .getLiveTimeline()
                .getEvents()
                .find((e) => e.getId() === res.event_id),
        );
        assert.equal(event.getContent().body, "live message");
        assert.equal(event.getSender(), state.alice.user_id);
    });

    test("the client's own message round-trips", async () => {
        const room = state.bob.getRoom(state.roomId);
        const { event_id: eventId } = await state.bob.sendTextMessage(state.roomId, "from bob via js");
        await waitFor("bob's own message confirmed by sliding sync", () =>
            room
                .getLiveTimeline()
                .getEvents()
                .some((e) => e.getId() === eventId && e.status === null),
        );
        const messages = await api(
            state.alice.access_token,
            "GET",
            `/rooms/${encodeURIComponent(state.roomId)}/messages?dir=b&limit=5`,
        );
        assert.ok(messages.chunk.some((e) => e.event_id === eventId && e.content.body === "from bob via js"));
    });

    test("a new room appears in the list, and a room subscription works", async () => {
        const created = await api(state.alice.access_token, "POST", "/createRoom", {
            name: "Second JS room",
            invite: [state.bobCreds.user_id],
        });
        const invited = await waitFor("the invite", () => {
            const room = state.bob.getRoom(created.room_id);
            return room && room.getMyMembership() === "invite" ? room : null;
        });
        assert.equal(invited.name, "Second JS room");
        await state.bob.joinRoom(created.room_id);
        await waitFor("the joined room's name from sliding sync", () => {
            const room = state.bob.getRoom(created.room_id);
            return room?.getMyMembership() === "join" && room.name === "Second JS room";
        });
        await waitFor("the list count", () => state.slidingSync.getListData("room_list").joinedCount === 2);
        state.slidingSync.modifyRoomSubscriptions(new Set([state.roomId]));
        const before = state.responses;
        await waitFor("a response after subscribing", () => state.responses > before);
        assert.deepEqual(failures, []);
    });
});
