// What every matrix-js-sdk scenario (threads.mjs, e2ee.test.mjs) needs to run against a real
// dendrite-lite: users and logged-in clients, ordered steps with hard time limits, and on a
// failure the evidence to see why without a rerun.
//
// A scenario file calls runScenario() once with its steps; each process (node --test runs a
// file in its own) runs one scenario, so the state here is that scenario's.
//
// Environment, set by tests/e2e/node_client.py:
//   HOMESERVER_URL         the server under test (required)
//   E2E_JS_LOG_FILE        where every HTTP exchange and all the SDK printed are written at the end
//   E2E_STEP_TIMEOUT_MS    each step's limit (default 60 s)
//   E2E_GLOBAL_TIMEOUT_MS  the whole run's limit (default: the scenario's globalTimeoutMs)
//
// The steps run in order and share state; a step whose prerequisite failed is skipped (named
// in the summary). A failing step prints the HTTP requests that failed, each client's sync
// state and last sync error, and the SDK's last warnings.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import { format } from "node:util";

import * as sdk from "matrix-js-sdk";

export const BASE_URL = process.env.HOMESERVER_URL;
export const STEP_TIMEOUT_MS = Number(process.env.E2E_STEP_TIMEOUT_MS ?? 60_000);
export const WAIT_TIMEOUT_MS = Math.min(30_000, STEP_TIMEOUT_MS - 5_000);
export const LOG_FILE = process.env.E2E_JS_LOG_FILE;
export const PASSWORD = "correct horse battery staple";

// ---------------------------------------------------------------------------------------
// Diagnostics: everything the SDK (and its wasm crypto) prints, every HTTP exchange.

/** node's own console: what the run itself reports. The SDK's console goes to the log. */
export const out = { log: console.log.bind(console), error: console.error.bind(console) };
const logLines = [];
const MAX_LOG_LINES = 50_000;

for (const level of ["trace", "debug", "info", "log", "warn", "error"]) {
    console[level] = (...args) => {
        if (logLines.length >= MAX_LOG_LINES) logLines.shift();
        logLines.push({ t: Date.now(), level, text: format(...args) });
    };
}
process.on("unhandledRejection", (reason) => {
    logLines.push({ t: Date.now(), level: "error", text: `unhandledRejection: ${describeError(reason)}` });
});

/** Every exchange: {who, method, path, query, status, ms, t, errcode?, request?, response?}. */
export const http = [];

/** Every client newClient made: {label, client, syncState, lastSyncError}. */
export const clients = [];

/** When the current step started (Date.now()); 0 before the first. */
export let stepStarted = 0;

/** The scenario's options (runScenario). */
let scenario = null;

function redact(text) {
    return text.replace(/"password"\s*:\s*"[^"]*"/g, '"password":"***"');
}

/** A fetch for the SDK that records each exchange in `http` under `who`. */
export function tracedFetch(who) {
    return async (input, init = {}) => {
        const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
        const method = (init.method ?? "GET").toUpperCase();
        const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== "access_token"));
        const started = Date.now();
        const entry = { who, method, path: url.pathname, query, status: null, ms: 0, t: started };
        if (typeof init.body === "string" && !url.pathname.endsWith("/login")) {
            entry.request = redact(init.body).slice(0, 600);
        }
        scenario?.onRequest?.(entry, init);
        http.push(entry);
        let response;
        try {
            response = await fetch(input, init);
        } catch (error) {
            entry.ms = Date.now() - started;
            entry.status = error?.name === "AbortError" ? "aborted" : "network-error";
            entry.response = describeError(error);
            throw error;
        }
        entry.ms = Date.now() - started;
        entry.status = response.status;
        const replacement = (await scenario?.replaceResponse?.(entry, response)) ?? null;
        if (response.status >= 400) {
            const text = await response.clone().text();
            entry.response = text.slice(0, 600);
            try {
                entry.errcode = JSON.parse(text).errcode;
            } catch {
                // not JSON
            }
        }
        return replacement ?? response;
    };
}

export function describeError(error) {
    if (error === undefined || error === null) return String(error);
    if (error instanceof sdk.MatrixError || error?.httpStatus) {
        return `${error.name} ${error.httpStatus ?? ""} ${error.errcode ?? ""}: ${error.message} ${
            error.data ? JSON.stringify(error.data).slice(0, 400) : ""
        }`;
    }
    return error?.stack ?? String(error);
}

/** Why a failed exchange is no fault, as a suffix: the scenario's word, else a UIA first leg. */
function failureNote(entry) {
    const note = scenario?.failureNote?.(entry);
    if (note) return ` (${note})`;
    // A 401 with flows is the first leg of user-interactive auth.
    return entry.status === 401 && (entry.response ?? "").includes('"flows"') ? " (expected)" : "";
}

function diagnostics(sinceT) {
    const lines = [];
    const failed = http.filter(
        (e) => e.t >= sinceT && (e.status === "network-error" || (typeof e.status === "number" && e.status >= 400)),
    );
    const groups = new Map();
    for (const entry of failed) {
        const key = `${entry.method} ${entry.path} -> ${entry.status} ${entry.errcode ?? ""}`;
        const group = groups.get(key) ?? { count: 0, first: entry, who: new Set() };
        group.count += 1;
        group.who.add(entry.who);
        groups.set(key, group);
    }
    lines.push(`--- HTTP failures during this step (${failed.length}):`);
    for (const [key, group] of groups) {
        lines.push(`  ${key} x${group.count} [${[...group.who].join(",")}]${failureNote(group.first)}`);
        if (Object.keys(group.first.query).length) lines.push(`      query:    ${JSON.stringify(group.first.query)}`);
        if (group.first.request) lines.push(`      request:  ${group.first.request}`);
        if (group.first.response) lines.push(`      response: ${group.first.response}`);
    }
    lines.push("--- clients:");
    for (const c of clients) {
        lines.push(
            `  ${c.label} ${c.client.getUserId()} device ${c.client.getDeviceId()}: sync ${c.syncState ?? "not started"}` +
                (c.lastSyncError ? `; last sync error: ${c.lastSyncError}` : ""),
        );
    }
    const quiet = scenario?.quietLog;
    const noisy = logLines.filter(
        (l) => l.t >= sinceT && (l.level === "warn" || l.level === "error") && !quiet?.test(l.text),
    );
    lines.push(`--- last SDK warnings/errors (${noisy.length} in this step):`);
    for (const l of noisy.slice(-25)) lines.push(`  [${l.level}] ${l.text.split("\n")[0].slice(0, 300)}`);
    if (LOG_FILE) lines.push(`--- full client log: ${LOG_FILE}`);
    return lines.join("\n");
}

function writeLogFile() {
    if (!LOG_FILE) return;
    const start = Math.min(logLines[0]?.t ?? Date.now(), http[0]?.t ?? Date.now());
    const body = [
        "=== HTTP",
        ...http.map(
            (e) =>
                `${((e.t - start) / 1000).toFixed(3)} ${e.who} ${e.method} ${e.path}` +
                `${Object.keys(e.query).length ? ` ${JSON.stringify(e.query)}` : ""} -> ${e.status} ${e.ms}ms` +
                (e.logNote ? ` (${e.logNote})` : "") +
                (e.request && !e.path.endsWith("/sync") ? `\n    request: ${e.request}` : "") +
                (e.response && e.status !== "aborted" ? `\n    response: ${e.response}` : ""),
        ),
        "=== SDK log",
        ...logLines.map((l) => `${((l.t - start) / 1000).toFixed(3)} [${l.level}] ${l.text}`),
    ];
    try {
        writeFileSync(LOG_FILE, body.join("\n") + "\n");
    } catch (error) {
        out.error(`could not write ${LOG_FILE}: ${error}`);
    }
}

// ---------------------------------------------------------------------------------------
// Waiting, users, clients

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Thrown by a waitFor probe to stop waiting at once. */
export class Fatal extends Error {}

/**
 * Poll `probe` until it returns something truthy (which is returned). A probe that throws
 * is retried, unless it throws Fatal; the scenario's waitGuard can stop every wait at once.
 * On a timeout the error says what was awaited, the probe's last error and `explain()`.
 */
export async function waitFor(what, probe, { timeout = WAIT_TIMEOUT_MS, interval = 100, explain } = {}) {
    const deadline = Date.now() + timeout;
    let lastError;
    for (;;) {
        const stop = scenario?.waitGuard?.();
        if (stop) throw new Fatal(`while waiting for ${what}: ${stop}`);
        try {
            const value = await probe();
            if (value) return value;
        } catch (error) {
            if (error instanceof Fatal) throw error;
            lastError = error;
        }
        if (Date.now() > deadline) {
            const parts = [`timed out after ${timeout / 1000}s waiting for ${what}`];
            if (lastError) parts.push(`last probe error: ${describeError(lastError)}`);
            if (explain) parts.push(await explain());
            throw new Error(parts.join("\n"));
        }
        await sleep(interval);
    }
}

export function unique(prefix) {
    return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** Register `username` (password PASSWORD, no login), through m.login.dummy if asked. */
export async function register(username) {
    const bare = sdk.createClient({ baseUrl: BASE_URL, fetchFn: tracedFetch(`register:${username}`) });
    const body = { username, password: PASSWORD, inhibit_login: true };
    try {
        return await bare.registerRequest(body);
    } catch (error) {
        if (error?.httpStatus !== 401 || !error.data?.flows) throw error;
        const dummy = error.data.flows.some((f) => f.stages?.length === 1 && f.stages[0] === "m.login.dummy");
        assert.ok(dummy, `no m.login.dummy flow offered: ${JSON.stringify(error.data)}`);
        return await bare.registerRequest({ ...body, auth: { type: "m.login.dummy", session: error.data.session } });
    }
}

/** A new device of `username` by password login; its display name is `label`. */
export async function login(username, label) {
    const bare = sdk.createClient({ baseUrl: BASE_URL, fetchFn: tracedFetch(`login:${label}`) });
    const response = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password: PASSWORD,
        initial_device_display_name: label,
    });
    assert.ok(response.access_token && response.device_id, `login answered ${JSON.stringify(response)}`);
    return response;
}

/**
 * A client for the logged-in device `creds` (a login() answer), traced as `label` and
 * listed in the diagnostics. `options` go to sdk.createClient (e.g. cryptoCallbacks).
 */
export function newClient(label, creds, options = {}) {
    const entry = { label, syncState: null, lastSyncError: null };
    entry.client = sdk.createClient({
        baseUrl: BASE_URL,
        userId: creds.user_id,
        deviceId: creds.device_id,
        accessToken: creds.access_token,
        fetchFn: tracedFetch(label),
        ...options,
    });
    entry.client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
        entry.syncState = state;
        if (data?.error) entry.lastSyncError = describeError(data.error);
    });
    clients.push(entry);
    return entry.client;
}

/** Start a newClient's sync loop and wait for its first /sync; a sync ERROR stops at once. */
export async function startSyncing(client, startOptions = { initialSyncLimit: 30 }) {
    const entry = clients.find((c) => c.client === client);
    await client.startClient(startOptions);
    await waitFor(`${entry.label}'s first /sync`, () => {
        if (entry.syncState === sdk.SyncState.Error) {
            throw new Fatal(`${entry.label}: sync state ERROR: ${entry.lastSyncError}`);
        }
        return entry.syncState === sdk.SyncState.Prepared || entry.syncState === sdk.SyncState.Syncing;
    });
}

/** The client's label in `http` and the diagnostics (its user ID if it has none). */
export function label(client) {
    return clients.find((c) => c.client === client)?.label ?? client.getUserId();
}

export async function waitForMembership(client, roomId, userId, membership) {
    await waitFor(
        `${label(client)} to see ${userId} ${membership} ${roomId}`,
        () => client.getRoom(roomId)?.getMember(userId)?.membership === membership,
    );
}

// ---------------------------------------------------------------------------------------
// Steps

const passed = new Set();
const results = [];

/**
 * A step: a node test that runs only if every step named in `deps` passed, within
 * STEP_TIMEOUT_MS; on a failure it prints the diagnostics since the step began.
 */
export function step(name, deps, fn) {
    test(name, { timeout: STEP_TIMEOUT_MS + 10_000 }, async (t) => {
        const missing = deps.filter((d) => !passed.has(d));
        if (missing.length) {
            results.push({ name, status: "skipped", note: `needs ${missing.join(", ")}` });
            t.skip(`prerequisite failed: ${missing.join(", ")}`);
            return;
        }
        const started = Date.now();
        stepStarted = started;
        let timer;
        try {
            await Promise.race([
                fn(),
                new Promise((_, reject) => {
                    timer = setTimeout(
                        () => reject(new Error(`step "${name}" exceeded its ${STEP_TIMEOUT_MS / 1000}s limit`)),
                        STEP_TIMEOUT_MS,
                    );
                }),
            ]);
            passed.add(name);
            results.push({ name, status: "passed", ms: Date.now() - started });
        } catch (error) {
            results.push({ name, status: "FAILED", ms: Date.now() - started, note: String(error?.message).split("\n")[0] });
            out.error(`\n##### step "${name}" failed\n${describeError(error)}\n${diagnostics(started)}\n`);
            // The stack, cut to the frames of the scenario and of this harness.
            const failure = new Error(`step "${name}" failed: ${error?.message ?? error}`);
            failure.stack = `${failure.message}\n${(error?.stack ?? "")
                .split("\n")
                .filter((l) => l.includes(scenario.file) || l.includes("harness.mjs"))
                .join("\n")}`;
            throw failure;
        } finally {
            clearTimeout(timer);
        }
    });
}

/**
 * Run one scenario: `steps()` declares its steps (step()) in order. At the end every client
 * stops, a summary of the steps is printed and the log file written; past the global limit
 * the run prints the diagnostics of the whole run and exits 1.
 *
 * title: the suite's name in node's report.
 * name: the scenario in the summary and the global timeout message ("threads", "E2EE").
 * file: the scenario's file name (a failed step keeps its stack frames).
 * globalTimeoutMs: the whole run's limit unless E2E_GLOBAL_TIMEOUT_MS is set.
 * Optional hooks:
 *   onRequest(entry, init): note more in an `http` entry before the request goes out.
 *   replaceResponse(entry, response): a Response the client sees instead of the server's, or
 *     null; set entry.logNote to say so in the log file.
 *   failureNote(entry): why a failed exchange is no fault ("expected"), or null.
 *   quietLog: a RegExp of SDK warnings not worth showing in a failed step's diagnostics.
 *   waitGuard(): a reason to stop every waitFor at once, or null.
 *   summaryNotes(): more lines for the summary.
 */
export function runScenario(options, steps) {
    assert.equal(scenario, null, "runScenario runs once per file");
    scenario = options;
    const globalTimeoutMs = Number(process.env.E2E_GLOBAL_TIMEOUT_MS ?? options.globalTimeoutMs);
    const globalTimer = setTimeout(() => {
        out.error(`GLOBAL TIMEOUT: the JS ${options.name} run exceeded ${globalTimeoutMs / 1000}s`);
        out.error(diagnostics(0));
        writeLogFile();
        process.exit(1);
    }, globalTimeoutMs);
    globalTimer.unref();

    describe(options.title, { concurrency: false }, () => {
        assert.ok(BASE_URL, "HOMESERVER_URL must name the server under test");

        after(async () => {
            clearTimeout(globalTimer);
            for (const { client } of clients) {
                try {
                    client.stopClient();
                } catch {
                    // already stopped
                }
            }
            out.log(`\n===== ${options.name} scenario summary`);
            for (const r of results) {
                out.log(
                    `  ${r.status.padEnd(7)} ${r.name}${r.ms !== undefined ? ` (${(r.ms / 1000).toFixed(1)}s)` : ""}${r.note ? ` - ${r.note}` : ""}`,
                );
            }
            for (const note of options.summaryNotes?.() ?? []) out.log(`  ${note}`);
            writeLogFile();
        });

        steps();
    });
}
