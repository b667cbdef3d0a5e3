// The session against a real gateway: services/devstack's TestWebClient
// runs these with a stack whose access tokens last 2 seconds. Without one
// (plain `npm test`) they are skipped, except under CI=true.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createClient, memoryStorage } from '../wxlogin.js'
import { locks } from './fakes.js'

const GATEWAY = process.env.WXLOGIN_TEST_GATEWAY_URL
const FAKE = process.env.WXLOGIN_TEST_FAKEWECHAT_URL
const APPID = process.env.WXLOGIN_TEST_MINIPROGRAM_APPID
const skip = GATEWAY ? false : 'no stack: services/devstack TestWebClient runs these'
if (!GATEWAY && process.env.CI === 'true') {
  throw new Error('WXLOGIN_TEST_GATEWAY_URL is not set: run through services/devstack TestWebClient')
}

// miniProgramLogin logs a new WeChat user in with a code of the fake WeChat.
async function miniProgramLogin(nickname) {
  const minted = await fetch(FAKE + '/fake/codes', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ appid: APPID }) })
  assert.equal(minted.status, 201)
  const { code } = await minted.json()
  const res = await fetch(GATEWAY + '/api/v1/auth/miniprogram/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code, user_info: { nickName: nickname } }),
  })
  assert.equal(res.status, 200)
  return res.json()
}

async function until(what, f, ms = 30000) {
  const end = Date.now() + ms
  while (!(await f())) {
    if (Date.now() > end) {
      assert.fail('timed out waiting for ' + what)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

// counting is fetch that counts the refreshes it sends.
function counting() {
  const c = { refreshes: [] }
  c.fetch = (url, init = {}) => {
    if (String(url).endsWith('/api/v1/auth/refresh')) {
      c.refreshes.push(JSON.parse(init.body).refresh_token)
    }
    return fetch(url, init)
  }
  return c
}

test('live: two tabs with an expired access token spend one refresh, both calls succeed; a reuse then ends the session', { skip }, async () => {
  const answer = await miniProgramLogin('Live Lu')
  const storage = memoryStorage()
  const lockManager = locks()
  const net = counting()
  const open = () => createClient({ baseURL: GATEWAY, fetch: net.fetch, storage, locks: lockManager, window: null })
  const a = open()
  a.session.set(answer)
  const b = open()
  assert.equal(b.session.user.id, answer.user.id)

  await until('the access token to expire', async () => {
    const r = await fetch(GATEWAY + '/api/v1/me', { headers: { Authorization: 'Bearer ' + answer.access_token } })
    return r.status === 401 && (await r.json()).code === 'token_expired'
  })
  const [ra, rb] = await Promise.all([a.session.fetch('/api/v1/me'), b.session.fetch('/api/v1/me')])
  assert.deepEqual([ra.status, rb.status], [200, 200])
  assert.equal((await ra.json()).id, answer.user.id)
  assert.deepEqual(net.refreshes, [answer.refresh_token], 'one refresh, with the stored token')
  assert.equal(a.session.accessToken, b.session.accessToken)

  // The old refresh token again (a stolen copy, say): the gateway sees the
  // reuse and revokes the family; the session's next refresh ends it.
  const reuse = await fetch(GATEWAY + '/api/v1/auth/refresh', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ refresh_token: answer.refresh_token }),
  })
  assert.equal(reuse.status, 401)
  assert.equal((await reuse.json()).code, 'refresh_token_reused')
  let reason = ''
  a.session.on('logout', (d) => { reason = d.reason })
  await assert.rejects(a.session.refresh(), (err) => ['token_revoked', 'refresh_token_reused'].includes(err.code))
  assert.ok(['token_revoked', 'refresh_token_reused'].includes(reason), reason)
  assert.equal(storage.getItem('wxlogin'), null)
})

test('live: logout ends the session at the gateway', { skip }, async () => {
  const answer = await miniProgramLogin('Live Lo')
  const c = createClient({ baseURL: GATEWAY, storage: memoryStorage(), locks: locks(), window: null })
  c.session.set(answer)
  assert.equal((await c.session.me()).id, answer.user.id)
  await c.session.logout()
  const r = await fetch(GATEWAY + '/api/v1/me', { headers: { Authorization: 'Bearer ' + answer.access_token } })
  assert.equal(r.status, 401)
  assert.equal(c.session.loggedIn, false)
})
