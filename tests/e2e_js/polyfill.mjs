// Loaded with `node --import ./polyfill.mjs` before matrix-js-sdk.
//
// matrix-js-sdk 38+ declares Node >= 22 and calls Promise.withResolvers (ES2024), which
// Node 20 lacks. Without it the SDK's sync loop throws a TypeError inside a promise chain
// and stops silently, so define it (to the spec's behaviour) when it is missing.
if (typeof Promise.withResolvers !== "function") {
    Object.defineProperty(Promise, "withResolvers", {
        configurable: true,
        writable: true,
        value: function withResolvers() {
            let resolve;
            let reject;
            const promise = new this((res, rej) => {
                resolve = res;
                reject = rej;
            });
            return { promise, resolve, reject };
        },
    });
}
