// Threads against a real dendrite-lite, seen through matrix-js-sdk's own thread support
// (`threadSupport: true`: server-side threads, MSC3440 / MSC3771 / MSC3773).
//
// Run by tests/e2e/test_js_threads.py, which starts the server and sets HOMESERVER_URL:
//   node --import ./polyfill.mjs --test --test-reporter=spec threads.mjs
//
// alice and bob build two threads with live clients; clients started only afterwards (a
// third user, carol, and a new login of bob) find them through the SDK's thread list
// (GET /threads), thread summaries (unsigned.m.relations.m.thread) and thread timelines
// (GET /relations), then threaded receipts clear per-thread unread counts (sync's
// unread_thread_notifications). Every assertion is on the SDK's objects.
//
// The steps, their limits and the diagnostics on failure come from harness.mjs.

import assert from "node:assert/strict";

import * as sdk from "matrix-js-sdk";

import {
    BASE_URL,
    http,
    label,
    login,
    newClient,
    register,
    runScenario,
    startSyncing,
    step,
    tracedFetch,
    unique,
    waitFor,
    waitForMembership,
} from "./harness.mjs";

const TOTAL = sdk.NotificationCountType.Total;
const HIGHLIGHT = sdk.NotificationCountType.Highlight;

// ---------------------------------------------------------------------------------------
// Helpers

/** A logged-in client (a new device of `username`), syncing with server-side threads. */
async function startClient(username, label, { initialSyncLimit = 30 } = {}) {
    const client = newClient(label, await login(username, label));
    await startSyncing(client, { initialSyncLimit, threadSupport: true });
    return client;
}

async function send(client, roomId, threadId, body) {
    const { event_id: eventId } = await client.sendTextMessage(roomId, threadId, body);
    assert.ok(eventId, "send answered no event_id");
    return eventId;
}

function body(event) {
    return event?.getContent()?.body;
}

/** What a client's thread holds, for failure messages. */
function describeThread(client, roomId, rootId) {
    return async () => {
        const room = client.getRoom(roomId);
        const thread = room?.getThread(rootId);
        if (!thread) {
            const known = room?.getThreads().map((t) => t.id) ?? [];
            return `${label(client)} has no thread ${rootId} (threads: ${JSON.stringify(known)})`;
        }
        const summary = thread.rootEvent?.getServerAggregatedRelation(sdk.THREAD_RELATION_TYPE.name);
        return [
            `${label(client)} thread ${rootId}: length=${thread.length} initialEventsFetched=${thread.initialEventsFetched}` +
                ` replyToEvent=${thread.replyToEvent?.getId()} participated=${thread.hasCurrentUserParticipated}`,
            `  root summary: ${JSON.stringify(summary)?.slice(0, 600)}`,
            ...thread.events.map((ev) => `  ${ev.getId()} ${ev.getSender()} ${JSON.stringify(body(ev))}`),
        ].join("\n");
    };
}

/** The room's thread list as the SDK holds it: roots, oldest activity first. */
function threadList(room, filter) {
    const index = filter === sdk.ThreadFilterType.My ? 1 : 0;
    return room.threadsTimelineSets[index]?.getLiveTimeline().getEvents().map((ev) => ev.getId()) ?? [];
}

function counts(room, threadId) {
    return {
        total: room.getThreadUnreadNotificationCount(threadId, TOTAL),
        highlight: room.getThreadUnreadNotificationCount(threadId, HIGHLIGHT),
    };
}

function mainCounts(room) {
    return { total: room.getRoomUnreadNotificationCount(TOTAL), highlight: room.getRoomUnreadNotificationCount(HIGHLIGHT) };
}

/** Every unread count the SDK shows for the room: main timeline and each thread. */
function unreadState(room) {
    return {
        main: mainCounts(room),
        [s.root1]: counts(room, s.root1),
        [s.root2]: counts(room, s.root2),
    };
}

async function waitForUnread(client, expected, what) {
    const room = client.getRoom(s.roomId);
    await waitFor(
        `${label(client)}: ${what}: unread counts ${JSON.stringify(expected)}`,
        () => JSON.stringify(unreadState(room)) === JSON.stringify(expected),
        {
            explain: async () => {
                const syncs = http.filter((e) => e.who === label(client) && e.path.endsWith("/sync")).length;
                return `the SDK shows ${JSON.stringify(unreadState(room))} after ${syncs} /sync requests`;
            },
        },
    );
}

/**
 * Load the room's thread list the way a client does (Element: createThreadsTimelineSets,
 * then fetchRoomThreads: GET /threads for include=all and include=participated).
 */
async function loadThreadList(client) {
    const room = client.getRoom(s.roomId);
    assert.ok(room, `${label(client)} has no room ${s.roomId}`);
    const sets = await room.createThreadsTimelineSets();
    assert.ok(sets, `${label(client)}: createThreadsTimelineSets() failed (the thread list filter)`);
    await room.fetchRoomThreads();
    assert.ok(room.threadsReady, `${label(client)}: fetchRoomThreads() left threadsReady false`);
    const requests = http.filter((e) => e.who === label(client) && e.path.endsWith(`/rooms/${s.roomId}/threads`));
    assert.deepEqual(
        requests.map((e) => [e.path.split("/rooms/")[0], e.query.include, e.status]).sort(),
        [
            ["/_matrix/client/v1", "all", 200],
            ["/_matrix/client/v1", "participated", 200],
        ],
        `${label(client)} did not list threads through GET /_matrix/client/v1/rooms/{roomId}/threads`,
    );
    return room;
}

/**
 * The thread as a client that was not there sees it: its summary from the root's
 * aggregation, its reply count, its latest reply, then its timeline from the server.
 */
async function checkThread(client, rootId, { replies, participated }) {
    const room = client.getRoom(s.roomId);
    const thread = room.getThread(rootId);
    assert.ok(thread, `${label(client)}: room.getThread(${rootId}) is null after fetchRoomThreads()`);
    assert.equal(thread.id, rootId);
    assert.equal(body(thread.rootEvent), s.bodies[rootId], "the thread's root event");
    assert.ok(thread.rootEvent.isThreadRoot, "the root is not marked isThreadRoot");

    // The root's bundled thread summary (unsigned.m.relations.m.thread), as the SDK reads it.
    const summary = thread.rootEvent.getServerAggregatedRelation(sdk.THREAD_RELATION_TYPE.name);
    assert.ok(summary, `the root carries no thread summary: ${JSON.stringify(thread.rootEvent.getUnsigned())}`);
    assert.equal(summary.count, replies.length, `summary count: ${JSON.stringify(summary)}`);
    assert.equal(summary.latest_event?.event_id, replies.at(-1), `summary latest_event: ${JSON.stringify(summary)}`);
    assert.equal(summary.latest_event?.content?.body, s.bodies[replies.at(-1)]);
    assert.equal(summary.current_user_participated, participated, `summary participation: ${JSON.stringify(summary)}`);

    await waitFor(`${label(client)}: thread ${rootId} to load its events`, () => thread.initialEventsFetched, {
        explain: describeThread(client, s.roomId, rootId),
    });
    await waitFor(
        `${label(client)}: thread ${rootId} to show ${replies.length} replies ending with ${replies.at(-1)}`,
        () =>
            thread.length === replies.length &&
            thread.replyToEvent?.getId() === replies.at(-1) &&
            thread.events.filter((ev) => ev.getId() !== rootId).length === replies.length,
        { explain: describeThread(client, s.roomId, rootId) },
    );
    assert.equal(body(thread.replyToEvent), s.bodies[replies.at(-1)], "the latest reply's body");
    assert.equal(thread.hasCurrentUserParticipated, participated, "thread.hasCurrentUserParticipated");
    // The thread timeline, paginated from the server (GET /relations/{root}/m.thread), in order.
    assert.deepEqual(
        thread.events.map((ev) => ev.getId()),
        [rootId, ...replies],
        `thread timeline:\n${await describeThread(client, s.roomId, rootId)()}`,
    );
    for (const reply of thread.events.slice(1)) {
        assert.equal(reply.threadRootId, rootId, `${reply.getId()} is not in thread ${rootId}`);
        assert.equal(body(reply), s.bodies[reply.getId()]);
    }
    return thread;
}

// ---------------------------------------------------------------------------------------
// The scenario: steps share this state.

const s = { bodies: {} };
const BUILD = "alice and bob build two threads with live clients (sendTextMessage with a threadId)";
const LIST = "carol, started afterwards, finds both threads through the SDK's thread list (GET /threads)";
const SUMMARY = "carol sees each thread's reply count, latest reply and timeline";
const PARTICIPATED = "a new login of bob sees the thread he took part in under 'My threads'";
const UNREAD = "carol's per-thread unread counts (unread_thread_notifications)";
const RECEIPTS = "a threaded read receipt clears only that thread; 'main' only the main timeline";
const UNTHREADED = "an unthreaded read receipt clears everything up to its event";
const LIVE = "a new reply reaches carol's loaded thread live: count, latest reply, list order, unread";

const SCENARIO = {
    title: "dendrite-lite threads with matrix-js-sdk",
    name: "threads",
    file: "threads.mjs",
    globalTimeoutMs: 240_000,
};

runScenario(SCENARIO, () => {
    step(BUILD, [], async () => {
        s.aliceName = unique("alice");
        s.bobName = unique("bob");
        s.carolName = unique("carol");
        for (const name of [s.aliceName, s.bobName, s.carolName]) await register(name);
        const alice = await startClient(s.aliceName, "alice");
        const bob = await startClient(s.bobName, "bob");
        s.aliceId = alice.getUserId();
        s.bobId = bob.getUserId();
        // carol joins without a syncing client: nothing of the room is loaded until later.
        const carolCreds = await login(s.carolName, "carol-join");
        s.carolId = carolCreds.user_id;

        const { room_id: roomId } = await alice.createRoom({
            preset: sdk.Preset.PrivateChat,
            invite: [s.bobId],
            name: "threads",
        });
        s.roomId = roomId;
        // (Not in createRoom's invite list: createRoom wakes only the last invitee's /sync.)
        await alice.invite(roomId, s.carolId);
        await waitFor(`bob to be invited to ${roomId}`, () => bob.getRoom(roomId)?.getMyMembership() === "invite");
        await bob.joinRoom(roomId);
        const carolBare = sdk.createClient({
            baseUrl: BASE_URL,
            userId: carolCreds.user_id,
            accessToken: carolCreds.access_token,
            fetchFn: tracedFetch("carol-join"),
        });
        await carolBare.joinRoom(roomId);
        await waitForMembership(alice, roomId, s.bobId, "join");
        await waitForMembership(alice, roomId, s.carolId, "join");
        await waitForMembership(bob, roomId, s.carolId, "join");

        const sent = async (client, threadId, text) => {
            const id = await send(client, roomId, threadId, text);
            s.bodies[id] = text;
            return id;
        };
        // Thread 2 (older activity): alice's root and alice's reply; bob is not part of it.
        s.root2 = await sent(alice, null, "root 2: lunch?");
        s.replies2 = [await sent(alice, s.root2, "2.1 alice: anyone?")];
        // Thread 1 (newer activity): alice's root, replies from bob, alice, bob.
        s.root1 = await sent(alice, null, "root 1: release plan");
        await waitFor("bob to receive root 1", () => bob.getRoom(roomId)?.findEventById(s.root1));
        s.replies1 = [await sent(bob, s.root1, "1.1 bob: tests first")];
        await waitFor(
            "alice's live thread 1 to hold bob's reply",
            () => alice.getRoom(roomId)?.getThread(s.root1)?.has(s.replies1[0]),
            { explain: describeThread(alice, roomId, s.root1) },
        );
        s.replies1.push(await sent(alice, s.root1, "1.2 alice: agreed"));
        await waitFor(
            "bob's live thread 1 to hold alice's reply",
            () => bob.getRoom(roomId)?.getThread(s.root1)?.has(s.replies1[1]),
            { explain: describeThread(bob, roomId, s.root1) },
        );
        s.replies1.push(await sent(bob, s.root1, "1.3 bob: shipping friday"));
        // And one message in the main timeline, the room's last event.
        s.after = await sent(alice, null, "main: see the threads");

        // The SDK sent each reply as a thread relation to its root.
        for (const [root, replies] of [
            [s.root1, s.replies1],
            [s.root2, s.replies2],
        ]) {
            for (const id of replies) {
                const wire = await alice.fetchRoomEvent(roomId, id);
                assert.equal(wire.content["m.relates_to"]?.rel_type, "m.thread", JSON.stringify(wire.content));
                assert.equal(wire.content["m.relates_to"]?.event_id, root, JSON.stringify(wire.content));
            }
        }

        // alice's live client followed thread 1 from /sync: three replies, bob's last.
        await waitFor(
            "alice's live thread 1 to count 3 replies, bob's last",
            () => {
                const thread = alice.getRoom(roomId)?.getThread(s.root1);
                return thread?.length === 3 && thread.replyToEvent?.getId() === s.replies1[2];
            },
            { explain: describeThread(alice, roomId, s.root1) },
        );
        s.alice = alice;
        s.bob = bob;
    });

    step(LIST, [BUILD], async () => {
        // A small initial sync: the timeline holds only the last (main) message, so the
        // threads can only come from the thread list.
        s.carol = await startClient(s.carolName, "carol1", { initialSyncLimit: 1 });
        const room = await waitFor("carol1 to see the room", () => s.carol.getRoom(s.roomId));
        assert.deepEqual(
            room.getLiveTimeline().getEvents().map((ev) => ev.getId()).filter((id) => s.bodies[id]),
            [s.after],
            "carol1's initial sync should hold only the last message",
        );
        assert.deepEqual(room.getThreads().map((t) => t.id), [], "carol1 knew threads before listing them");

        await loadThreadList(s.carol);
        // Both threads, ordered by their latest activity (the SDK keeps the oldest first).
        assert.deepEqual(threadList(room, sdk.ThreadFilterType.All), [s.root2, s.root1], "the 'all threads' list");
        assert.deepEqual(threadList(room, sdk.ThreadFilterType.My), [], "carol took part in no thread");
        assert.deepEqual(room.getThreads().map((t) => t.id).sort(), [s.root1, s.root2].sort(), "room.getThreads()");
    });

    step(SUMMARY, [LIST], async () => {
        s.carolThread1 = await checkThread(s.carol, s.root1, { replies: s.replies1, participated: false });
        s.carolThread2 = await checkThread(s.carol, s.root2, { replies: s.replies2, participated: false });
        // Replies live in their threads, not in the main timeline.
        const main = s.carol.getRoom(s.roomId).getLiveTimeline().getEvents().map((ev) => ev.getId());
        for (const id of [...s.replies1, ...s.replies2]) assert.ok(!main.includes(id), `${id} is in the main timeline`);
    });

    step(PARTICIPATED, [LIST], async () => {
        const bob2 = await startClient(s.bobName, "bob2");
        const room = await loadThreadList(bob2);
        assert.deepEqual(threadList(room, sdk.ThreadFilterType.All), [s.root2, s.root1], "bob2's 'all threads' list");
        assert.deepEqual(threadList(room, sdk.ThreadFilterType.My), [s.root1], "bob2's 'my threads' list");
        await checkThread(bob2, s.root1, { replies: s.replies1, participated: true });
        await checkThread(bob2, s.root2, { replies: s.replies2, participated: false });
        bob2.stopClient();
    });

    step(UNREAD, [LIST], async () => {
        // Every message notifies carol (default push rules; she has sent no receipt): the
        // roots and the last message in the main timeline, the replies in their threads.
        s.initialUnread = {
            main: { total: 3, highlight: 0 },
            [s.root1]: { total: 3, highlight: 0 },
            [s.root2]: { total: 1, highlight: 0 },
        };
        await waitForUnread(s.carol, s.initialUnread, "before any receipt");
        const room = s.carol.getRoom(s.roomId);
        assert.ok(room.hasThreadUnreadNotification(), "room.hasThreadUnreadNotification()");
        // The SDK picks the count by the event's context: a reply's thread, or the main timeline.
        const reply = s.carolThread1?.replyToEvent ?? room.findEventById(s.replies1.at(-1));
        if (reply) assert.equal(room.getUnreadCountForEventContext(TOTAL, reply), 3);
        const last = room.findEventById(s.after);
        assert.equal(room.getUnreadCountForEventContext(TOTAL, last), 3);
    });

    step(RECEIPTS, [SUMMARY, UNREAD], async () => {
        const room = s.carol.getRoom(s.roomId);
        const latest = s.carolThread1.events.at(-1);
        assert.equal(latest.getId(), s.replies1.at(-1));
        await s.carol.sendReadReceipt(latest);
        const request = http.findLast((e) => e.who === "carol1" && e.path.includes(`/receipt/m.read/`));
        assert.equal(request?.status, 200, `the threaded receipt was refused: ${JSON.stringify(request)}`);
        assert.deepEqual(JSON.parse(request.request), { thread_id: s.root1 }, "the SDK's receipt body");

        // Thread 1 is read; thread 2 and the main timeline are not.
        const afterThreaded = { ...s.initialUnread, [s.root1]: { total: 0, highlight: 0 } };
        await waitForUnread(s.carol, afterThreaded, "after the receipt in thread 1");
        assert.ok(s.carolThread1.hasUserReadEvent(s.carolId, latest.getId()), "carol's thread 1 is not read");

        // The others get the receipt with its thread: it lands in alice's thread 1, not the room's main receipts.
        await waitFor(
            "alice to get carol's receipt in thread 1",
            () =>
                s.alice.getRoom(s.roomId)?.getThread(s.root1)?.getReadReceiptForUserId(s.carolId, true)?.eventId ===
                latest.getId(),
        );
        const aliceRoom = s.alice.getRoom(s.roomId);
        const mainReceipt = aliceRoom.getReadReceiptForUserId(s.carolId, true)?.eventId;
        assert.notEqual(mainReceipt, latest.getId(), "the threaded receipt landed in the main timeline");
        assert.ok(aliceRoom.getThread(s.root1).hasUserReadEvent(s.carolId, latest.getId()));

        // A receipt on the last main-timeline message is threaded "main": thread 2 stays unread.
        await s.carol.sendReadReceipt(room.findEventById(s.after));
        const mainRequest = http.findLast((e) => e.who === "carol1" && e.path.includes(`/receipt/m.read/`));
        assert.deepEqual(JSON.parse(mainRequest.request), { thread_id: "main" }, "the SDK's receipt body");
        s.afterMain = { ...afterThreaded, main: { total: 0, highlight: 0 } };
        await waitForUnread(s.carol, s.afterMain, "after the receipt in the main timeline");

        // A client started now gets the same counts from its first sync.
        const carol2 = await startClient(s.carolName, "carol2");
        await waitForUnread(carol2, s.afterMain, "on a new login");
        carol2.stopClient();
    });

    step(UNTHREADED, [RECEIPTS], async () => {
        const room = s.carol.getRoom(s.roomId);
        await s.carol.sendReadReceipt(room.findEventById(s.after), sdk.ReceiptType.Read, true);
        const request = http.findLast((e) => e.who === "carol1" && e.path.includes(`/receipt/m.read/`));
        assert.deepEqual(JSON.parse(request.request), {}, "an unthreaded receipt has no thread_id");
        assert.equal(request.status, 200);
        const allRead = {
            main: { total: 0, highlight: 0 },
            [s.root1]: { total: 0, highlight: 0 },
            [s.root2]: { total: 0, highlight: 0 },
        };
        await waitForUnread(s.carol, allRead, "after an unthreaded receipt");
        assert.ok(!room.hasThreadUnreadNotification(), "room.hasThreadUnreadNotification() after reading");
        const carol3 = await startClient(s.carolName, "carol3");
        await waitForUnread(carol3, allRead, "on a new login");
        carol3.stopClient();
    });

    step(LIVE, [SUMMARY, UNTHREADED], async () => {
        const text = "2.2 bob: count me in";
        const id = await send(s.bob, s.roomId, s.root2, text);
        s.bodies[id] = text;
        s.replies2.push(id);
        const room = s.carol.getRoom(s.roomId);
        await waitFor(
            "carol1's thread 2 to count 2 replies, bob's new one last",
            () =>
                s.carolThread2.length === 2 &&
                s.carolThread2.replyToEvent?.getId() === id &&
                s.carolThread2.events.at(-1)?.getId() === id,
            { explain: describeThread(s.carol, s.roomId, s.root2) },
        );
        assert.equal(body(s.carolThread2.replyToEvent), text);
        assert.ok(!room.getLiveTimeline().getEvents().some((ev) => ev.getId() === id), "the reply is in the main timeline");
        // Thread 2 now has the latest activity: last in the list.
        await waitFor(
            "carol1's thread list to put thread 2 last",
            () => JSON.stringify(threadList(room, sdk.ThreadFilterType.All)) === JSON.stringify([s.root1, s.root2]),
            { explain: async () => `the list is ${JSON.stringify(threadList(room, sdk.ThreadFilterType.All))}` },
        );
        await waitForUnread(
            s.carol,
            {
                main: { total: 0, highlight: 0 },
                [s.root1]: { total: 0, highlight: 0 },
                [s.root2]: { total: 1, highlight: 0 },
            },
            "after a new reply in thread 2",
        );
    });
});
