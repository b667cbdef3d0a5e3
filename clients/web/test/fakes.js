// Stand-ins for what a browser gives the module (Web Locks, the storage
// event) and for the gateway, for the unit tests. Not a test file itself.

export const BASE = 'http://gw.test'

// locks is navigator.locks as the tabs of one browser share it: one
// exclusive lock per name, granted in order.
export function locks() {
  const tails = new Map()
  const l = {
    requests: 0,
    request(name, fn) {
      l.requests++
      const run = (tails.get(name) || Promise.resolve()).then(() => fn({ name, mode: 'exclusive' }))
      tails.set(name, run.catch(() => {}))
      return run
    },
  }
  return l
}

// problem answers an RFC 9457 problem as the gateway does.
export function problem(status, code, extra = {}) {
  return new Response(JSON.stringify({ type: 'about:blank', title: code, status, code, request_id: 'rid-1', ...extra }),
    { status, headers: { 'Content-Type': 'application/problem+json' } })
}

export function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5))

// gateway is a fake of the token routes (refresh rotates and detects reuse,
// /me wants a live access token, logout revokes) plus whatever routes a
// test adds. calls records every request.
export function gateway(routes = {}) {
  const g = {
    calls: [],
    n: 0,
    live: new Set(), // access tokens /me accepts
    spent: new Set(), // refresh tokens used once
    fresh: new Set(), // refresh tokens not used yet
    refreshAnswer: null, // a Response to answer refreshes with instead, or a function
    issue(user = { id: 'u-1', nickname: 'Ada' }) {
      g.n++
      const t = { access_token: 'at-' + g.n, refresh_token: 'rt-' + g.n, token_type: 'Bearer', expires_in: 7200, refresh_expires_in: 2592000, user, is_new_user: false }
      g.live.add(t.access_token)
      g.fresh.add(t.refresh_token)
      return t
    },
    expire(accessToken) { g.live.delete(accessToken) },
    count(method, path) { return g.calls.filter((c) => c.method === method && c.path === path).length },
    async fetch(input, init = {}) {
      if (input instanceof Request) { // as fetch reads one: init overrides
        init = { method: input.method, body: input.body ? await input.text() : undefined, ...init, headers: init.headers || input.headers }
        input = input.url
      }
      const u = new URL(String(input))
      const method = init.method || 'GET'
      const headers = new Headers(init.headers)
      const call = { method, path: u.pathname, url: u, headers, init, body: init.body ? JSON.parse(init.body) : null }
      g.calls.push(call)
      await tick() // every call takes a while, so that calls overlap
      if (init.signal && init.signal.aborted) {
        throw init.signal.reason
      }
      const own = routes[method + ' ' + u.pathname]
      if (own) {
        return own(call, g)
      }
      const bearer = (headers.get('Authorization') || '').replace(/^Bearer /, '')
      switch (method + ' ' + u.pathname) {
        case 'GET /api/v1/me':
          if (g.live.has(bearer)) {
            return json(200, { id: 'u-1', nickname: 'Ada', identities: [] })
          }
          return problem(401, bearer.startsWith('at-') ? 'token_expired' : 'token_invalid')
        case 'POST /api/v1/auth/refresh': {
          if (g.refreshAnswer) {
            const r = typeof g.refreshAnswer === 'function' ? g.refreshAnswer(call) : g.refreshAnswer.clone()
            if (r) {
              return r
            }
          }
          const rt = call.body.refresh_token
          if (g.spent.has(rt)) {
            return problem(401, 'refresh_token_reused')
          }
          if (!g.fresh.has(rt)) {
            return problem(401, 'token_invalid')
          }
          g.fresh.delete(rt)
          g.spent.add(rt)
          return json(200, g.issue())
        }
        case 'POST /api/v1/auth/logout':
          if (!g.live.has(bearer)) {
            return problem(401, 'token_expired')
          }
          g.live.delete(bearer)
          return new Response(null, { status: 204 })
      }
      return problem(404, 'not_found')
    },
  }
  return g
}

// page is what a tab gives the module besides fetch: its window (for the
// storage event), location and history.
export function page(href = BASE + '/app/') {
  const win = new EventTarget()
  const loc = {
    href,
    get origin() { return new URL(this.href).origin },
    assigned: [],
    assign(url) { this.assigned.push(url) },
  }
  const history = { state: null, replaced: [], replaceState(state, _title, url) { this.replaced.push(url); loc.href = new URL(url, loc.href).href } }
  return { window: win, location: loc, history }
}

// storageEvent is what a browser fires in the other tabs when one writes.
export function storageEvent(key, storageArea) {
  const e = new Event('storage')
  e.key = key
  e.storageArea = storageArea
  return e
}

// sharedStore is the shared store as IndexedDB gives it to the tabs of a
// browser: one backend, every write seen by every later read. Records are
// copied in and out, as IndexedDB clones them.
export function sharedStore() {
  const m = new Map()
  const copy = (v) => (v === undefined ? undefined : structuredClone(v))
  return {
    records: m,
    writes: 0,
    async get(key) {
      await tick()
      return copy(m.get(key))
    },
    async set(key, value) {
      this.writes++
      m.set(key, copy(value))
      await tick()
    },
    async delete(key) {
      m.delete(key)
      await tick()
    },
  }
}

// laggingStorage is localStorage as Chromium gives it to the renderers of
// one browser: each tab reads its own copy, which another tab's write only
// reaches when the browser gets round to it (here: at sync()).
export function laggingStorage() {
  const browser = new Map()
  const views = []
  return {
    browser,
    // tab is one renderer's localStorage; it starts as a copy of the browser's.
    tab() {
      const own = new Map(browser)
      const view = {
        getItem: (k) => (own.has(k) ? own.get(k) : null),
        setItem: (k, v) => { own.set(k, String(v)); browser.set(k, String(v)) },
        removeItem: (k) => { own.delete(k); browser.delete(k) },
        sync() { own.clear(); browser.forEach((v, k) => own.set(k, v)) },
      }
      views.push(view)
      return view
    },
    sync() { views.forEach((v) => v.sync()) },
  }
}
