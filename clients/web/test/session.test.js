import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createClient, memoryStorage, WxLoginError } from '../wxlogin.js'
import { BASE, gateway, json, locks, page, problem, storageEvent } from './fakes.js'

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
  while (g.count('GET', '/api/v1/me') === 0 || !release) {
    await new Promise((r) => setTimeout(r, 1))
  }
  await new Promise((r) => setTimeout(r, 20))
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
