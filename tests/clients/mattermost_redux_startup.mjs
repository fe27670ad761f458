// The Mattermost web app's start-up, driven through the unmodified mattermost-redux (the web app's own data
// layer) against a Canopy workspace server, on Node 20.
//
// Usage: node mattermost_redux_startup.mjs  (configuration in the environment)
//   CANOPY_URL       the server's base URL, e.g. http://127.0.0.1:8065
//   CANOPY_TEAM      the team name
//   CANOPY_USER / CANOPY_PASSWORD   the account that signs in
//   CANOPY_STATUS_IDS               comma-separated user ids whose statuses the app asks for
//
// The sequence follows the web app: sign in, client config and licence, loadMe (me, preferences, teams and
// team members, team unreads, server limits), select the team, its channels and my memberships, select
// town-square, its first page of posts (which fetches the authors' profiles and statuses), and the status poll.
//
// Prints one JSON object on stdout: what each action returned (errors included), every HTTP request made (method,
// path, status), and the resulting store's pieces. The library's own logging goes to stderr.

import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);

// mattermost-redux's data loaders call window.setTimeout/setInterval.
globalThis.window = globalThis;
// Keep stdout for the result.
console.log = (...args) => console.error(...args);

// Every request the app makes, and those still in flight.
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
    } catch (err) {
        record.error = String(err);
        throw err;
    } finally {
        inFlight -= 1;
    }
};

const configureStore = require('mattermost-redux/store').default;
const {Client4} = require('mattermost-redux/client');
const {getClientConfig, getLicenseConfig} = require('mattermost-redux/actions/general');
const {loadMe, getStatusesByIds} = require('mattermost-redux/actions/users');
const {selectTeam} = require('mattermost-redux/actions/teams');
const {fetchChannelsAndMembers, selectChannel} = require('mattermost-redux/actions/channels');
const {getPosts} = require('mattermost-redux/actions/posts');

const env = (name) => {
    const value = process.env[name];
    if (value === undefined) {
        throw new Error(`${name} is not set`);
    }
    return value;
};
const IDLE_TIMEOUT_MS = 10000;

const result = {actions: {}, requests};

async function run(name, action) {
    const outcome = await store.dispatch(action);
    result.actions[name] = outcome?.error ? {error: String(outcome.error.message ?? outcome.error)} : {ok: true};
    return outcome;
}

// Requests the app starts in the background (profiles, statuses of the posts' authors) finish before the store is
// read: wait until none is in flight, with a deadline.
async function idle() {
    const deadline = Date.now() + IDLE_TIMEOUT_MS;
    while (inFlight > 0) {
        if (Date.now() > deadline) {
            throw new Error(`${inFlight} requests still in flight`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
}

const store = configureStore({});

async function main() {
    Client4.setUrl(env('CANOPY_URL'));
    await Client4.login(env('CANOPY_USER'), env('CANOPY_PASSWORD'));

    await Promise.all([run('getClientConfig', getClientConfig()), run('getLicenseConfig', getLicenseConfig())]);
    await run('loadMe', loadMe());

    const team = Object.values(store.getState().entities.teams.teams).find((t) => t.name === env('CANOPY_TEAM'));
    if (!team) {
        throw new Error(`team ${env('CANOPY_TEAM')} is not among my teams`);
    }
    store.dispatch(selectTeam(team));
    await run('fetchChannelsAndMembers', fetchChannelsAndMembers(team.id));

    const townSquare = Object.values(store.getState().entities.channels.channels).find(
        (c) => c.team_id === team.id && c.name === 'town-square',
    );
    store.dispatch(selectChannel(townSquare.id));
    await run('getPosts', getPosts(townSquare.id));
    await run('getStatusesByIds', getStatusesByIds(env('CANOPY_STATUS_IDS').split(',')));
    await idle();

    const state = store.getState();
    const {users, teams, channels, preferences, posts, general} = state.entities;
    result.store = {
        general: {version: general.serverVersion, config_version: general.config.Version, license: general.license},
        users: {
            current_user_id: users.currentUserId,
            me: users.profiles[users.currentUserId]?.username ?? null,
            profiles: Object.values(users.profiles).map((p) => p.username).sort(),
            statuses: users.statuses,
            is_manual_status: users.isManualStatus,
        },
        teams: {
            current_team_id: teams.currentTeamId,
            teams: Object.values(teams.teams).map((t) => t.name),
            my_members: Object.keys(teams.myMembers),
        },
        channels: {
            current_channel_id: channels.currentChannelId,
            channels: Object.values(channels.channels).map((c) => ({id: c.id, name: c.name, team_id: c.team_id})),
            in_team: [...(channels.channelsInTeam[team.id] ?? [])],
            my_members: Object.fromEntries(
                Object.entries(channels.myMembers).map(([id, m]) => [id, {user_id: m.user_id, roles: m.roles}]),
            ),
        },
        preferences: preferences.myPreferences,
        posts: {
            in_channel: (posts.postsInChannel[townSquare.id] ?? []).map((block) => ({
                order: block.order,
                recent: block.recent,
                oldest: block.oldest,
            })),
            messages: Object.fromEntries(Object.values(posts.posts).map((p) => [p.id, p.message])),
        },
    };
}

try {
    await main();
} catch (err) {
    result.fatal = String(err?.stack ?? err);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
