import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createClient, memoryStorage, WxLoginError } from '../wxlogin.js'
import { BASE, gateway, json, laggingStorage, locks, page, problem, sharedStore, storageEvent } from './fakes.js'

// tab is one tab of the site: its own client on the storage and locks the
// tabs of a browser share.
function tab(g, storage, lockManager, extra = {}) {
  return createClient({ baseURL: BASE, fetch: g.fetch, storage, locks: lockManager, window: null, ...extra })
}

// loggedIn stores an expired session: /me answers token_expired for it.
function loggedIn(g, storage) {
  const t = g.issue()
  g.expire(t.access_token)
  storage.setItem('wxlogin', JSON.stringify({ access_token: t.access_token, refresh_token: t.refresh_token, token_type: 'Bearer', user: t.user }))
  return t
}

function events(session) {
  const seen = []
  for (const type of ['login', 'refresh', 'logout']) {
    session.on(type, (detail) => seen.push({ type, detail }))
  }
  return seen
}

test('an expired access token: one refresh for every call in flight, then each call once more', async () => {
  const g = gateway()
  const storage = memoryStorage()
  const old = loggedIn(g, storage)
  const { session } = tab(g, storage, locks())
  const seen = events(session)

  const answers = await Promise.all([1, 2, 3].map(() => session.fetch('/api/v1/me')))
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200])
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1)
  assert.equal(g.calls.find((c) => c.path === '/api/v1/auth/refresh').body.refresh_token, old.refresh_token)
  assert.equal(g.count('GET', '/api/v1/me'), 6, 'each call: the 401, then once more')
  assert.notEqual(session.accessToken, old.access_token)
  assert.equal(JSON.parse(storage.getItem('wxlogin')).refresh_token, session.tokens.refresh_token, 'the new pair is stored')
  assert.deepEqual(seen.map((e) => e.type), ['refresh'])
  for (const c of g.calls.filter((c) => c.path === '/api/v1/me')) {
    assert.match(c.headers.get('Authorization'), /^Bearer at-/)
  }
})

test('two tabs, one storage, one lock: exactly one refresh, and both calls succeed', async () => {
  const g = gateway()
  const storage = memoryStorage()
  const lockManager = locks()
  loggedIn(g, storage)
  const a = tab(g, storage, lockManager).session
  const b = tab(g, storage, lockManager).session
  const seenB = events(b)

  const [ra, rb] = await Promise.all([a.fetch('/api/v1/me'), b.fetch('/api/v1/me')])
  assert.equal(ra.status, 200)
  assert.equal(rb.status, 200)
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1, 'the second tab used the first one\'s tokens')
  assert.equal(lockManager.requests, 2, 'both tabs took the lock')
  assert.equal(a.accessToken, b.accessToken)
  assert.deepEqual(seenB.map((e) => e.type), ['refresh'])
  assert.equal(g.spent.size, 1)
})

// lagging is two tabs of a browser whose localStorage lags behind the
// other tab's writes (as Chromium's can), on one shared store and one lock,
// logged in with an access token that has expired.
function lagging(g) {
  const ls = laggingStorage()
  const store = sharedStore()
  const lockManager = locks()
  const t = g.issue()
  const a = tab(g, ls.tab(), lockManager, { sharedStore: store }).session
  a.set(t)
  g.expire(t.access_token)
  const b = tab(g, ls.tab(), lockManager, { sharedStore: store }).session
  return { ls, store, lockManager, t, a, b }
}

test('two tabs whose localStorage lags: the shared store still lets exactly one refresh through', async () => {
  const g = gateway()
  const { store, lockManager, t, a, b } = lagging(g)
  assert.equal(b.accessToken, t.access_token)
  const seenB = events(b)

  const [ra, rb] = await Promise.all([a.fetch('/api/v1/me'), b.fetch('/api/v1/me')])
  assert.deepEqual([ra.status, rb.status], [200, 200])
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1, 'the second tab took the first one\'s tokens from the shared store')
  assert.equal(lockManager.requests, 2)
  assert.equal(g.spent.size, 1)
  assert.equal(a.accessToken, b.accessToken)
  assert.equal(store.records.get('wxlogin').refresh_token, a.tokens.refresh_token, 'the new pair is in the shared store')
  assert.deepEqual(seenB.map((e) => e.type), ['refresh'])
})

test('a logout in another tab reaches the lock through the shared store, though localStorage lags', async () => {
  const g = gateway()
  const { store, a, b } = lagging(g)
  const seenB = events(b)
  await a.logout() // refreshes first (the token has expired), then logs out
  assert.equal(store.records.get('wxlogin'), null, 'the shared store says logged out')
  assert.notEqual(b.tokens, null, 'the storage event has not come')

  await assert.rejects(b.fetch('/api/v1/me'), { code: 'logged_out' })
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1, 'only the logging out tab\'s')
  assert.equal(b.loggedIn, false)
  assert.deepEqual(seenB.map((e) => e.type + ':' + e.detail.reason), ['logout:other_tab'])
})

test('a login in another tab while this one waited for the lock is taken, not refreshed', async () => {
  const g = gateway()
  const { a, b } = lagging(g)
  const seenB = events(b)
  const other = g.issue({ id: 'u-2', nickname: 'Bo' })
  a.set(other)

  const r = await b.fetch('/api/v1/me')
  assert.equal(r.status, 200)
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 0)
  assert.equal(b.accessToken, other.access_token)
  assert.equal(g.calls.at(-1).headers.get('Authorization'), 'Bearer ' + other.access_token)
  assert.deepEqual(seenB.map((e) => e.type), ['login'])
})

test('a shared store without a record (tokens from before it) goes by storage, then holds the new pair', async () => {
  const g = gateway()
  const storage = memoryStorage()
  const store = sharedStore()
  loggedIn(g, storage)
  const { session } = tab(g, storage, locks(), { sharedStore: store })
  assert.equal((await session.fetch('/api/v1/me')).status, 200)
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1)
  assert.equal(store.records.get('wxlogin').access_token, session.accessToken)
})

test('a refresh that ends the session says so in the shared store before the lock is let go', async () => {
  const g = gateway()
  const { store, lockManager, a } = lagging(g)
  g.refreshAnswer = problem(401, 'refresh_token_reused')
  const call = a.fetch('/api/v1/me')
  while (lockManager.requests === 0) {
    await new Promise((r) => setTimeout(r, 1))
  }
  // The next tab in the lock reads what this one left.
  const next = lockManager.request('wxlogin-refresh', () => store.records.get('wxlogin'))
  await assert.rejects(call, { code: 'refresh_token_reused' })
  assert.equal(await next, null)
})

test('a shared store that fails: the session goes by storage, and leaves no record behind', async () => {
  const g = gateway()
  const storage = memoryStorage()
  loggedIn(g, storage)
  const deleted = []
  const broken = {
    get: async () => { throw new Error('QuotaExceededError') },
    set: async () => { throw new Error('QuotaExceededError') },
    delete: async (key) => { deleted.push(key) },
  }
  const { session } = tab(g, storage, locks(), { sharedStore: broken })
  assert.equal((await session.fetch('/api/v1/me')).status, 200)
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1)
  assert.equal(JSON.parse(storage.getItem('wxlogin')).access_token, session.accessToken)
  assert.deepEqual(deleted, ['wxlogin'])
})

test('IndexedDB is the shared store of localStorage only, not of a storage the page chose', async () => {
  const opened = []
  const idb = {
    open(name, version) { // a browser that refuses it: the session goes on without
      opened.push(name + '@' + version)
      const req = {}
      setTimeout(() => { req.error = new Error('denied'); req.onerror() })
      return req
    },
  }
  const saved = { indexedDB: globalThis.indexedDB, localStorage: globalThis.localStorage }
  globalThis.indexedDB = idb
  try {
    const g = gateway()
    tab(g, memoryStorage(), locks()).session.set(g.issue())
    assert.deepEqual(opened, [], 'memoryStorage: no IndexedDB')

    globalThis.localStorage = memoryStorage()
    const { session } = createClient({ baseURL: BASE, fetch: g.fetch, locks: locks(), window: null })
    session.set(g.issue())
    await session.logout()
    assert.ok(opened.length > 0 && opened.every((o) => o === 'wxlogin@1'), `opened ${opened}`)
    assert.equal(globalThis.localStorage.getItem('wxlogin'), null)
  } finally {
    Object.assign(globalThis, saved)
  }
})

test('two tabs without navigator.locks: the storage lease still lets one refresh through', async () => {
  const g = gateway()
  const storage = memoryStorage()
  loggedIn(g, storage)
  const a = tab(g, storage, null).session
  const b = tab(g, storage, null).session
  const [ra, rb] = await Promise.all([a.fetch('/api/v1/me'), b.fetch('/api/v1/me')])
  assert.deepEqual([ra.status, rb.status], [200, 200])
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1)
  assert.equal(storage.getItem('wxlogin-refresh'), null, 'the lease is given back')
})

for (const code of ['refresh_token_reused', 'token_revoked', 'token_invalid']) {
  test(`a refresh answered ${code} ends the session: storage cleared, logout event`, async () => {
    const g = gateway()
    const storage = memoryStorage()
    loggedIn(g, storage)
    g.refreshAnswer = problem(401, code)
    const { session } = tab(g, storage, locks())
    const seen = events(session)

    await assert.rejects(session.fetch('/api/v1/me'), (err) => {
      assert.ok(err instanceof WxLoginError)
      assert.equal(err.code, code)
      assert.equal(err.status, 401)
      assert.equal(err.requestID, 'rid-1')
      return true
    })
    assert.equal(session.loggedIn, false)
    assert.equal(storage.getItem('wxlogin'), null)
    assert.deepEqual(seen, [{ type: 'logout', detail: { reason: code } }])
    // Logged out, the next call goes without a Bearer.
    await session.fetch('/api/v1/me')
    assert.equal(g.calls.at(-1).headers.get('Authorization'), null)
  })
}

test('a refresh answered 503 keeps the session; the same refresh token works once the gateway is back', async () => {
  const g = gateway()
  const storage = memoryStorage()
  const old = loggedIn(g, storage)
  g.refreshAnswer = problem(503, 'service_unavailable')
  const { session } = tab(g, storage, locks())
  const seen = events(session)

  await assert.rejects(session.fetch('/api/v1/me'), { name: 'WxLoginError', code: 'service_unavailable', status: 503 })
  assert.equal(session.loggedIn, true)
  assert.equal(JSON.parse(storage.getItem('wxlogin')).refresh_token, old.refresh_token)
  assert.deepEqual(seen, [])

  g.refreshAnswer = null
  const r = await session.fetch('/api/v1/me')
  assert.equal(r.status, 200)
  const spentWith = g.calls.filter((c) => c.path === '/api/v1/auth/refresh').map((c) => c.body.refresh_token)
  assert.deepEqual(spentWith, [old.refresh_token, old.refresh_token])
})

test('a refresh lost on the network is not retried, and keeps the session', async () => {
  const g = gateway()
  const storage = memoryStorage()
  loggedIn(g, storage)
  g.refreshAnswer = () => { throw new TypeError('Failed to fetch') }
  const { session } = tab(g, storage, locks())
  await assert.rejects(session.fetch('/api/v1/me'), { code: 'network_error' })
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1)
  assert.equal(session.loggedIn, true)
})

test('other 401s and other answers come back as they are, without a refresh', async () => {
  const g = gateway({
    'GET /api/v1/admin/users': () => problem(403, 'forbidden'),
    'GET /api/v1/other': () => problem(401, 'token_revoked'),
  })
  const storage = memoryStorage()
  const t = g.issue()
  storage.setItem('wxlogin', JSON.stringify(t))
  const { session } = tab(g, storage, locks())
  assert.equal((await session.fetch('/api/v1/admin/users')).status, 403)
  const r = await session.fetch('/api/v1/other')
  assert.equal(r.status, 401)
  assert.equal((await r.json()).code, 'token_revoked', 'the body is left for the caller')
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 0)
})

test('the Bearer goes to the gateway, this page and bearerOrigins only', async () => {
  const g = gateway({ 'GET /x': () => json(200, {}) })
  const storage = memoryStorage()
  storage.setItem('wxlogin', JSON.stringify(g.issue()))
  const p = page('https://www.site.example/app/')
  const { session } = tab(g, storage, locks(), { location: p.location, bearerOrigins: ['https://api.site.example'] })
  const sent = async (url) => {
    await session.fetch(url)
    return g.calls.at(-1).headers.get('Authorization')
  }
  assert.match(await sent('/x'), /^Bearer /)
  assert.equal(g.calls.at(-1).url.href, BASE + '/x', 'a path goes to baseURL')
  assert.match(await sent('https://www.site.example/x'), /^Bearer /)
  assert.match(await sent('https://api.site.example/x'), /^Bearer /)
  assert.equal(await sent('https://elsewhere.example/x'), null)
  assert.equal(await sent('http://www.site.example/x'), null, 'another scheme is another origin')
})

test('a call with a body (string or Request) is sent again, whole, after the refresh', async () => {
  const g = gateway({
    'PATCH /api/v1/me': (call, g) => (g.live.has(call.headers.get('Authorization').slice(7)) ? json(200, {}) : problem(401, 'token_expired')),
  })
  const storage = memoryStorage()
  loggedIn(g, storage)
  const { session } = tab(g, storage, locks())
  const body = JSON.stringify({ nickname: 'Bo' })
  const r = await session.fetch('/api/v1/me', { method: 'PATCH', body, headers: { 'Content-Type': 'application/json' } })
  assert.equal(r.status, 200)
  g.expire(session.accessToken)
  const req = new Request(BASE + '/api/v1/me', { method: 'PATCH', body, headers: { 'Content-Type': 'application/json' } })
  assert.equal((await session.fetch(req)).status, 200)
  const patches = g.calls.filter((c) => c.method === 'PATCH')
  assert.equal(patches.length, 4)
  for (const c of patches) {
    assert.equal(c.init.body, body)
    assert.equal(c.headers.get('Content-Type'), 'application/json')
  }
})

test('another tab refreshing or logging out reaches this one through the storage event', async () => {
  const g = gateway()
  const storage = memoryStorage()
  const t = g.issue()
  storage.setItem('wxlogin', JSON.stringify(t))
  const p = page()
  const { session } = tab(g, storage, locks(), { window: p.window })
  const seen = events(session)

  const next = g.issue()
  storage.setItem('wxlogin', JSON.stringify(next))
  p.window.dispatchEvent(storageEvent('wxlogin', storage))
  assert.equal(session.accessToken, next.access_token)
  p.window.dispatchEvent(storageEvent('unrelated', storage))
  p.window.dispatchEvent(storageEvent('wxlogin', memoryStorage())) // sessionStorage, say

  storage.removeItem('wxlogin')
  p.window.dispatchEvent(storageEvent('wxlogin', storage))
  assert.equal(session.loggedIn, false)
  assert.deepEqual(seen.map((e) => e.type + (e.detail.reason ? ':' + e.detail.reason : '')), ['refresh', 'logout:other_tab'])
})

test('a tab whose refresh waited for the lock finds the other tab logged out', async () => {
  const g = gateway()
  const storage = memoryStorage()
  loggedIn(g, storage)
  const lockManager = locks()
  const { session } = tab(g, storage, lockManager)
  let release
  lockManager.request('wxlogin-refresh', () => new Promise((r) => { release = r })) // another tab holds it
  const call = session.fetch('/api/v1/me')
  // Until this tab's refresh waits for the lock (the other tab's request is the first).
  while (lockManager.requests < 2 || !release) {
    await new Promise((r) => setTimeout(r, 1))
  }
  storage.removeItem('wxlogin') // that tab logged out
  release()
  await assert.rejects(call, { code: 'logged_out' })
  assert.equal(session.loggedIn, false)
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 0)
})

test('logout: the gateway revokes, every tab\'s storage is cleared', async () => {
  const g = gateway()
  const storage = memoryStorage()
  const t = g.issue()
  const { session } = tab(g, storage, locks())
  session.set(t)
  assert.equal(session.user.nickname, 'Ada')
  const seen = events(session)
  await session.logout()
  const call = g.calls.find((c) => c.path === '/api/v1/auth/logout')
  assert.equal(call.headers.get('Authorization'), 'Bearer ' + t.access_token)
  assert.equal(storage.getItem('wxlogin'), null)
  assert.deepEqual(seen, [{ type: 'logout', detail: { reason: 'logout' } }])
  assert.equal(g.live.has(t.access_token), false)
})

test('logout with an expired access token refreshes first; with the gateway down it still logs out here', async () => {
  const g = gateway()
  const storage = memoryStorage()
  loggedIn(g, storage)
  const { session } = tab(g, storage, locks())
  await session.logout()
  assert.equal(g.count('POST', '/api/v1/auth/refresh'), 1)
  assert.equal(g.calls.filter((c) => c.path === '/api/v1/auth/logout').length, 2)
  assert.equal(session.loggedIn, false)

  const down = gateway({ 'POST /api/v1/auth/logout': () => problem(503, 'service_unavailable') })
  const s2 = tab(down, memoryStorage(), locks()).session
  s2.set(down.issue())
  await assert.rejects(s2.logout(), { code: 'service_unavailable' })
  assert.equal(s2.loggedIn, false)
})

test('set refuses what is not a token answer', () => {
  const { session } = tab(gateway(), memoryStorage(), locks())
  assert.throws(() => session.set({ status: 'pending' }), { code: 'invalid_tokens' })
})
