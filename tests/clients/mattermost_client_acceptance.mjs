// Acceptance run of the unmodified @mattermost/client (Client4 + WebSocketClient) against a Canopy workspace
// server, on Node 20.
//
// Usage: node mattermost_client_acceptance.mjs  (configuration in the environment)
//   CANOPY_URL       the server's base URL, e.g. http://127.0.0.1:8065
//   CANOPY_TEAM      the team name
//   CANOPY_USER_A / CANOPY_PASSWORD_A, CANOPY_USER_B / CANOPY_PASSWORD_B: two accounts in the team
//
// Prints one JSON object on stdout: each step's outcome ({ok, value} or {ok: false, status, id, message}) and
// what each WebSocket client received. The client library's own logging goes to stderr.

import WebSocket from 'ws';
import mattermost from '@mattermost/client';

// Node 20 has neither a WebSocket global nor CloseEvent: the client needs both.
globalThis.WebSocket = WebSocket;
if (typeof globalThis.CloseEvent === 'undefined') {
    globalThis.CloseEvent = class CloseEvent extends Event {
        constructor(type, init = {}) {
            super(type);
            this.code = init.code ?? 0;
            this.reason = init.reason ?? '';
            this.wasClean = init.wasClean ?? false;
        }
    };
}
// Keep stdout for the result.
console.log = (...args) => console.error(...args);

const {Client4, WebSocketClient} = mattermost;
const env = (name) => {
    const value = process.env[name];
    if (!value) {
        throw new Error(`${name} is not set`);
    }
    return value;
};
const baseUrl = env('CANOPY_URL');
const teamName = env('CANOPY_TEAM');
const EVENT_TIMEOUT_MS = 10000;

const result = {steps: {}, sockets: {}};

async function step(name, fn) {
    try {
        const value = await fn();
        result.steps[name] = {ok: true, value: value ?? null};
        return value;
    } catch (err) {
        result.steps[name] = {
            ok: false,
            status: err.status_code ?? null,
            id: err.server_error_id ?? null,
            message: String(err.message ?? err),
        };
        return undefined;
    }
}

class Socket {
    constructor(label, client) {
        this.label = label;
        this.ws = new WebSocketClient();
        this.events = [];
        this.hellos = 0;
        this.missed = 0;
        this.reconnects = 0;
        this.waiters = [];
        this.ws.addMessageListener((msg) => {
            if (msg.event === 'hello') {
                this.hellos += 1;
            }
            this.events.push(msg);
            this.waiters = this.waiters.filter(({predicate, resolve}) => {
                if (predicate(msg)) {
                    resolve(msg);
                    return false;
                }
                return true;
            });
        });
        this.ws.addMissedMessageListener(() => {
            this.missed += 1;
        });
        this.ws.addReconnectListener(() => {
            this.reconnects += 1;
        });
        this.url = client.getWebSocketUrl().replace(/^http/, 'ws');
        this.token = client.getToken();
    }

    connect() {
        const hello = this.waitFor((msg) => msg.event === 'hello');
        this.ws.initialize(this.url, this.token);
        return hello;
    }

    waitFor(predicate, timeoutMs = EVENT_TIMEOUT_MS) {
        const seen = this.events.find(predicate);
        if (seen) {
            return Promise.resolve(seen);
        }
        return new Promise((resolve, reject) => {
            const waiter = {predicate, resolve};
            this.waiters.push(waiter);
            setTimeout(() => {
                this.waiters = this.waiters.filter((w) => w !== waiter);
                reject(new Error(`${this.label}: no matching event within ${timeoutMs} ms`));
            }, timeoutMs);
        });
    }

    summary() {
        const counts = {};
        for (const msg of this.events) {
            counts[msg.event] = (counts[msg.event] ?? 0) + 1;
        }
        return {
            hellos: this.hellos,
            missed: this.missed,
            reconnects: this.reconnects,
            seqs: this.events.map((msg) => msg.seq),
            counts,
        };
    }
}

const postedFor = (postId) => (msg) => msg.event === 'posted' && JSON.parse(msg.data.post).id === postId;

async function main() {
    const a = new Client4();
    const b = new Client4();
    a.setUrl(baseUrl);
    b.setUrl(baseUrl);

    const me = await step('login', async () => {
        const userA = await a.login(env('CANOPY_USER_A'), env('CANOPY_PASSWORD_A'));
        const userB = await b.login(env('CANOPY_USER_B'), env('CANOPY_PASSWORD_B'));
        return {a: userA.id, b: userB.id, username_a: userA.username};
    });
    if (!me) {
        return;
    }
    const team = await step('get_team', async () => {
        const t = await a.getTeamByName(teamName);
        return {id: t.id, name: t.name};
    });
    if (!team) {
        return;
    }

    const wsA = new Socket('a', a);
    const wsB = new Socket('b', b);
    await step('websocket_connect', async () => {
        const [helloA] = await Promise.all([wsA.connect(), wsB.connect()]);
        return {seq: helloA.seq, connection_id: helloA.data.connection_id};
    });

    const channel = await step('create_channel', async () => {
        const suffix = Date.now().toString(36);
        const c = await a.createChannel({
            team_id: team.id,
            name: `js-${suffix}`,
            display_name: `JS ${suffix}`,
            type: 'O',
        });
        return {id: c.id, name: c.name, type: c.type};
    });
    if (!channel) {
        return;
    }
    await step('join_channel', async () => {
        const member = await b.addToChannel(me.b, channel.id);
        await wsA.waitFor((msg) => msg.event === 'user_added' && msg.data.user_id === me.b);
        return {channel_id: member.channel_id, user_id: member.user_id};
    });

    const root = await step('post', async () => {
        const post = await a.createPost({channel_id: channel.id, message: 'canopy acceptance xylophone'});
        const event = await wsB.waitFor(postedFor(post.id));
        return {id: post.id, event_post_is_string: typeof event.data.post === 'string', sender: event.data.sender_name};
    });
    if (!root) {
        return;
    }
    const reply = await step('thread_reply', async () => {
        const post = await b.createPost({channel_id: channel.id, message: `reply for @${me.username_a}`, root_id: root.id});
        const event = await wsA.waitFor(postedFor(post.id));
        return {
            id: post.id,
            root_id: post.root_id,
            mentions: event.data.mentions ? JSON.parse(event.data.mentions) : [],
        };
    });
    await step('get_thread', async () => {
        const thread = await a.getPostThread(root.id, true, false);
        return {order: thread.order, reply_in_thread: Boolean(reply && thread.posts[reply.id])};
    });
    await step('typing', async () => {
        wsB.ws.userTyping(channel.id, '');
        const event = await wsA.waitFor((msg) => msg.event === 'typing' && msg.data.user_id === me.b);
        return {channel_id: event.broadcast.channel_id, parent_id: event.data.parent_id};
    });
    await step('reaction', async () => {
        const reaction = await b.addReaction(me.b, root.id, 'thumbsup');
        const event = await wsA.waitFor((msg) => msg.event === 'reaction_added');
        const fromEvent = JSON.parse(event.data.reaction);
        return {emoji_name: reaction.emoji_name, event_reaction: fromEvent, reactions: (await a.getReactionsForPost(root.id)).length};
    });
    // Before jsa posts again: posting marks the channel read for its author, as in Mattermost.
    await step('unread', async () => {
        const route = `${a.getUserRoute('me')}/channels/${channel.id}/unread`;
        const before = await a.doFetch(route, {method: 'get'});
        const teams = await a.getMyTeamUnreads(false);
        const viewed = await a.viewMyChannel(channel.id);
        const event = await wsA.waitFor((msg) => msg.event === 'channel_viewed' && msg.data.channel_id === channel.id);
        const after = await a.doFetch(route, {method: 'get'});
        const member = await a.getMyChannelMember(channel.id);
        return {
            before: {msg_count: before.msg_count, mention_count: before.mention_count},
            teams: teams.map((t) => ({team_id: t.team_id, msg_count: t.msg_count, mention_count: t.mention_count})),
            viewed_status: viewed.status,
            event_user: event.broadcast.user_id,
            after: {msg_count: after.msg_count, mention_count: after.mention_count},
            member: {msg_count: member.msg_count, mention_count: member.mention_count},
        };
    });
    await step('file_upload', async () => {
        const form = new FormData();
        form.append('channel_id', channel.id);
        form.append('files', new Blob(['hello from the javascript client\n'], {type: 'text/plain'}), 'hello.txt');
        const uploaded = await a.uploadFile(form);
        const fileId = uploaded.file_infos[0].id;
        const post = await a.createPost({channel_id: channel.id, message: 'with a file', file_ids: [fileId]});
        await wsB.waitFor(postedFor(post.id));
        const infos = await a.getFileInfosForPost(post.id);
        return {file_id: fileId, post_file_ids: post.file_ids, infos: infos.map((f) => ({id: f.id, name: f.name, size: f.size}))};
    });
    await step('search', async () => {
        const found = await a.searchPosts(team.id, 'xylophone', false);
        return {order: found.order};
    });
    await step('ping', () => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no pong')), EVENT_TIMEOUT_MS);
        wsA.ws.ping((reply) => {
            clearTimeout(timer);
            resolve({status: reply.status, text: reply.data?.text});
        });
    }));

    result.sockets = {a: wsA.summary(), b: wsB.summary()};
    wsA.ws.close();
    wsB.ws.close();
}

try {
    await main();
} catch (err) {
    result.fatal = String(err?.stack ?? err);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
