// What the Mattermost web app's data layer (the unmodified mattermost-redux, on Node 20) makes of a Canopy
// workspace with a billing plan: the licence, the cloud subscription, products and limits it loads for a cloud
// workspace, and a post it sends while the workspace is suspended.
//
// Usage: node mattermost_redux_cloud.mjs  (configuration in the environment)
//   CANOPY_URL                      the server's base URL, e.g. http://127.0.0.1:8065
//   CANOPY_USER / CANOPY_PASSWORD   the account that signs in
//   CANOPY_CHANNEL_ID               a channel of theirs to post in
//
// Prints one JSON object on stdout: every HTTP request made (method, path, status), what the selectors the web
// app's billing banners use return, and what became of the post. The library's own logging goes to stderr.

import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);

globalThis.window = globalThis;
console.log = (...args) => console.error(...args);

const requests = [];
let inFlight = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
    const url = new URL(typeof input === 'string' ? input : input.url);
    const record = {method: (init.method ?? 'GET').toUpperCase(), path: url.pathname, status: null};
    requests.push(record);
    inFlight += 1;
    try {
        const response = await realFetch(input, init);
        record.status = response.status;
        return response;
    } finally {
        inFlight -= 1;
    }
};

const configureStore = require('mattermost-redux/store').default;
const {Client4} = require('mattermost-redux/client');
const {getLicenseConfig} = require('mattermost-redux/actions/general');
const {getMe} = require('mattermost-redux/actions/users');
const {getCloudSubscription, getCloudProducts} = require('mattermost-redux/actions/cloud');
const {createPost} = require('mattermost-redux/actions/posts');
const cloud = require('mattermost-redux/selectors/entities/cloud');

const env = (name) => {
    const value = process.env[name];
    if (value === undefined) {
        throw new Error(`${name} is not set`);
    }
    return value;
};

// Waits (with a deadline) until ``done()`` holds and no request is in flight.
async function until(done) {
    const deadline = Date.now() + 10000;
    while (inFlight > 0 || !done()) {
        if (Date.now() > deadline) {
            throw new Error(`still waiting (${inFlight} requests in flight)`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
}

const store = configureStore({});
const result = {requests};

async function main() {
    Client4.setUrl(env('CANOPY_URL'));
    await Client4.login(env('CANOPY_USER'), env('CANOPY_PASSWORD'));
    await store.dispatch(getMe());
    await store.dispatch(getLicenseConfig());
    await store.dispatch(getCloudSubscription());
    await store.dispatch(getCloudProducts());
    // The web app's own getCloudLimits action (not in mattermost-redux) calls this.
    result.limits = await Client4.getCloudLimits();

    const pendingPostId = `${store.getState().entities.users.currentUserId}:${Date.now()}`;
    await store.dispatch(
        createPost({channel_id: env('CANOPY_CHANNEL_ID'), message: 'sent while suspended', pending_post_id: pendingPostId}),
    );
    // The app shows the post at once, then replaces it when the server answers, marks it failed or drops it.
    const pendingPost = () => store.getState().entities.posts.posts[pendingPostId];
    await until(() => pendingPost() === undefined || pendingPost().failed === true);

    const state = store.getState();
    const pending = pendingPost();
    result.license = state.entities.general.license;
    result.is_cloud = cloud.isCurrentLicenseCloud(state);
    result.subscription = cloud.getCloudSubscription(state) ?? null;
    result.products = cloud.getCloudProducts(state) ?? null;
    result.subscription_product = cloud.getSubscriptionProduct(state) ?? null;
    result.cloud_errors = cloud.getCloudErrors(state);
    result.pending_post = pending ? {message: pending.message, failed: pending.failed === true} : null;
}

try {
    await main();
} catch (err) {
    result.fatal = String(err?.stack ?? err);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
