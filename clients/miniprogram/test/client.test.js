'use strict'

// The client against a running stack (gateway, identity and session as
// processes, a fake WeChat): services/devstack TestMiniProgramClientLibrary
// starts it with short-lived access tokens and runs this file.

const { test, describe, before } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')

const { createClient, WxLoginError } = require('..')
const { testEnv, createFakeWx, closedURL, until } = require('./fake-wx')

const env = testEnv()
const KEY = 'wxlogin_tokens' // the client's default storage key
const ME = '/api/v1/me'
const LOGIN = '/api/v1/auth/miniprogram/login'
const REFRESH = '/api/v1/auth/refresh'
const LOGOUT = '/api/v1/auth/logout'
const T = { timeout: 30000 } // each test's bound: nothing here may hang

// session is a mini-program of the WeChat user openid: its wx and a client.
function session(openid) {
  const wx = createFakeWx({ fakeURL: env.fakeURL, appid: env.appid, openid })
  return { wx, client: createClient({ baseURL: env.baseURL, wx }) }
}

// direct calls the gateway without the client.
async function direct(method, path, { token, body } = {}) {
  const headers = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = 'Bearer ' + token
  const r = await fetch(env.baseURL + path, { method, headers, body: body && JSON.stringify(body) })
  const text = await r.text()
  return { status: r.status, body: text ? JSON.parse(text) : null }
}

async function control(path) {
  const r = await fetch(env.controlURL + path, { method: 'POST' })
  assert.equal(r.status, 204, 'control ' + path + ': ' + (await r.text()))
}

// fakeErrors makes the fake WeChat answer errcode to the next count code
// exchanges; count 0 cancels what is left.
async function fakeErrors(errcode, count) {
  const r = await fetch(env.fakeURL + '/fake/errors', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ path: '/sns/jscode2session', errcode, count }),
  })
  assert.equal(r.status, 204)
}

const code = (c) => (err) => err instanceof WxLoginError && err.code === c

test('login keeps the tokens in wx storage and request sends the access token', T, async () => {
  const { wx, client } = session('o_mpclient_login')
  assert.equal(client.isLoggedIn(), false)
  const first = await client.login({ userInfo: { nickName: 'Alice', avatarUrl: 'https://example.com/alice.png' } })
  assert.equal(first.is_new_user, true)
  assert.equal(first.user.nickname, 'Alice')
  const stored = wx.getStorageSync(KEY)
  assert.ok(stored.access_token && stored.refresh_token, 'tokens in storage: ' + JSON.stringify(stored))
  assert.equal(client.isLoggedIn(), true)

  const me = await client.request({ url: ME })
  assert.equal(me.statusCode, 200)
  assert.equal(me.data.id, first.user.id)
  assert.equal(me.data.nickname, 'Alice')
  assert.equal(wx.log.at(-1).header.Authorization, 'Bearer ' + stored.access_token)

  const again = await client.login()
  assert.equal(again.is_new_user, false)
  assert.equal(again.user.id, first.user.id)
  assert.notEqual(wx.getStorageSync(KEY).access_token, stored.access_token)
})

test('a request before any login rejects with not_logged_in and sends nothing', T, async () => {
  const { wx, client } = session('o_mpclient_nobody')
  await assert.rejects(client.request({ url: ME }), code('not_logged_in'))
  assert.equal(wx.log.length, 0)
})

test('a request while the first login is under way waits for it', T, async () => {
  const { client } = session('o_mpclient_early')
  const login = client.login()
  const me = await client.request({ url: ME })
  assert.equal(me.data.id, (await login).user.id)
})

test('problem answers reject with their code, status and request id', T, async () => {
  const { client } = session('o_mpclient_problem')
  await client.login()
  await assert.rejects(client.request({ url: '/api/v1/admin/users' }), (err) => {
    assert.ok(err instanceof WxLoginError)
    assert.equal(err.code, 'forbidden')
    assert.equal(err.status, 403)
    assert.equal(err.problem.code, 'forbidden')
    assert.match(err.requestId, /.+/)
    assert.equal(err.requestId, err.problem.request_id)
    return true
  })
})

test('only paths under baseURL: the token goes to no other host', T, async () => {
  const { wx, client } = session('o_mpclient_paths')
  await client.login()
  for (const url of ['https://example.com/steal', '//example.com/steal', 'javascript:alert(1)']) {
    await assert.rejects(client.request({ url }), TypeError, url)
  }
  assert.equal(wx.log.filter((c) => c.path === '/steal').length, 0)
  assert.equal((await client.request({ url: 'api/v1/me' })).statusCode, 200) // no leading slash
})

test('wechat_code_used from the login call: one more wx.login, then it works', T, async (t) => {
  const { wx, client } = session('o_mpclient_codeused')
  await fakeErrors(40163, 1)
  t.after(() => fakeErrors(0, 0)) // none left for the next test, whatever happens
  const r = await client.login()
  assert.ok(r.user.id)
  assert.equal(wx.calls('wx.login'), 2)
  assert.equal(wx.calls(LOGIN), 2)
})

test('wechat_code_used twice: only one retry, then it rejects with the code', T, async (t) => {
  const { wx, client } = session('o_mpclient_codeused2')
  await fakeErrors(40163, 2)
  t.after(() => fakeErrors(0, 0))
  await assert.rejects(client.login(), (err) => err.code === 'wechat_code_used' && err.status === 401)
  assert.equal(wx.calls('wx.login'), 2)
  assert.equal(wx.calls(LOGIN), 2)
  assert.equal(client.isLoggedIn(), false)
})

test('wx.login failing rejects with wx_login_failed, before any call', T, async () => {
  // The fake WeChat mints no code for an app it does not know.
  const wx = createFakeWx({ fakeURL: env.fakeURL, appid: 'wx_unknown_app', openid: 'o_mpclient_nocode' })
  const client = createClient({ baseURL: env.baseURL, wx })
  await assert.rejects(client.login(), code('wx_login_failed'))
  assert.equal(wx.calls(LOGIN), 0)
})

test('a network failure rejects with network_error and loses no tokens', T, async () => {
  const { wx, client } = session('o_mpclient_offline')
  await client.login()
  const stored = wx.getStorageSync(KEY)
  // The same storage, and a gateway that is not there.
  const offline = createClient({ baseURL: await closedURL(), wx })
  await assert.rejects(offline.request({ url: ME }), (err) => err.code === 'network_error' && err.status === 0)
  assert.deepEqual(wx.getStorageSync(KEY), stored)
  assert.equal((await client.request({ url: ME })).statusCode, 200)
})

test('logout removes the tokens and the server refuses the old access token', T, async () => {
  const { wx, client } = session('o_mpclient_logout')
  await client.login()
  const { access_token: old } = wx.getStorageSync(KEY)
  await client.logout()
  assert.equal(wx.calls(LOGOUT), 1)
  assert.equal(wx.getStorageSync(KEY), '')
  assert.equal(client.isLoggedIn(), false)
  const r = await direct('GET', ME, { token: old })
  assert.equal(r.status, 401)
  assert.equal(r.body.code, 'token_revoked')
  await assert.rejects(client.request({ url: ME }), code('not_logged_in'))
  await client.logout() // nothing to end: no call
  assert.equal(wx.calls(LOGOUT), 1)
})

test('a session ended elsewhere: token_revoked rejects and the dead tokens are removed', T, async () => {
  const { wx, client } = session('o_mpclient_revoked')
  await client.login()
  const r = await direct('POST', LOGOUT, { token: wx.getStorageSync(KEY).access_token }) // another device
  assert.equal(r.status, 204)
  await assert.rejects(client.request({ url: ME }), code('token_revoked'))
  assert.equal(wx.calls(REFRESH), 0)
  assert.equal(wx.calls('wx.login'), 1)
  assert.equal(client.isLoggedIn(), false)
})

describe('once the access token has expired', { timeout: 60000 }, () => {
  // Sessions logged in together, so that one wait covers them all.
  const parallel = session('o_mpclient_parallel')
  const spent = session('o_mpclient_spent')
  const revoked = session('o_mpclient_famrevoked')
  const invalid = session('o_mpclient_unknownrt')
  const relogin = session('o_mpclient_reloginfails')
  const outage = session('o_mpclient_outage')
  const late = session('o_mpclient_late')
  const all = [parallel, spent, revoked, invalid, relogin, outage, late]

  before(async () => {
    for (const s of all) {
      s.user = (await s.client.login()).user
      s.stale = s.wx.getStorageSync(KEY)
    }
    // spent's refresh token is used once behind its back (as by another
    // copy of the app): what it keeps is an already rotated token.
    const r = await direct('POST', REFRESH, { body: { refresh_token: spent.stale.refresh_token } })
    assert.equal(r.status, 200)
    // revoked's and relogin's sessions are logged out behind their backs (as
    // on another device) while their access tokens are still valid: the
    // family is revoked, and once the access token has expired the gateway
    // answers token_expired (expiry is checked before revocation), so the
    // client refreshes, and the refresh is answered token_revoked.
    for (const s of [revoked, relogin]) {
      const out = await direct('POST', LOGOUT, { token: s.stale.access_token })
      assert.equal(out.status, 204)
    }
    // invalid keeps a refresh token of the right form and user that names a
    // family the server never made: the refresh is answered token_invalid.
    const [uid, , gen, secret] = invalid.stale.refresh_token.split('.')
    invalid.forged = [uid, randomUUID(), gen, secret].join('.')
    invalid.wx.setStorageSync(KEY, { access_token: invalid.stale.access_token, refresh_token: invalid.forged })
    // The real expiry (WXLOGIN_ACCESS_TTL plus the verifiers' leeway).
    await until(30000, 'the access tokens to expire', async () => {
      for (const s of all) {
        const me = await direct('GET', ME, { token: s.stale.access_token })
        if (me.status !== 401 || me.body.code !== 'token_expired') return false
      }
      return true
    })
  })

  test('five calls at once share one refresh, then each runs once more', T, async () => {
    const { wx, client, user, stale } = parallel
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => client.request({ url: ME })))
    for (const a of answers) {
      assert.equal(a.statusCode, 200)
      assert.equal(a.data.id, user.id)
    }
    assert.equal(wx.calls(REFRESH), 1)
    assert.equal(wx.calls(ME), 10)
    assert.equal(wx.calls('wx.login'), 1) // the first login only
    const now = wx.getStorageSync(KEY)
    assert.notEqual(now.access_token, stale.access_token)
    assert.notEqual(now.refresh_token, stale.refresh_token)
  })

  test('a spent refresh token: refresh_token_reused, one new login, and the calls succeed', T, async () => {
    const { wx, client, user, stale } = spent
    const answers = await Promise.all([1, 2, 3].map(() => client.request({ url: ME })))
    for (const a of answers) assert.equal(a.data.id, user.id)
    assert.equal(wx.calls(REFRESH), 1)
    assert.equal(wx.calls('wx.login'), 2)
    assert.equal(wx.calls(LOGIN), 2)
    assert.equal(wx.log.find((c) => c.path === REFRESH).code, 'refresh_token_reused')
    assert.notEqual(wx.getStorageSync(KEY).refresh_token, stale.refresh_token)
  })

  test('a revoked family: the refresh is answered token_revoked, one new login, and the calls succeed', T, async () => {
    const { wx, client, user, stale } = revoked
    const answers = await Promise.all([1, 2, 3].map(() => client.request({ url: ME })))
    for (const a of answers) {
      assert.equal(a.statusCode, 200)
      assert.equal(a.data.id, user.id)
    }
    assert.equal(wx.calls(REFRESH), 1)
    assert.equal(wx.log.find((c) => c.path === REFRESH).code, 'token_revoked')
    assert.equal(wx.calls('wx.login'), 2) // the first login and the one after the refresh
    assert.equal(wx.calls(LOGIN), 2)
    assert.equal(wx.calls(ME), 6)
    const now = wx.getStorageSync(KEY)
    assert.notEqual(now.refresh_token, stale.refresh_token)
    assert.equal((await direct('GET', ME, { token: now.access_token })).status, 200) // a new session, not the old one
  })

  test('an unknown refresh token: the refresh is answered token_invalid, one new login, and the call succeeds', T, async () => {
    const { wx, client, user, forged } = invalid
    const me = await client.request({ url: ME })
    assert.equal(me.statusCode, 200)
    assert.equal(me.data.id, user.id)
    assert.equal(wx.calls(REFRESH), 1)
    assert.equal(wx.log.find((c) => c.path === REFRESH).code, 'token_invalid')
    assert.equal(wx.calls('wx.login'), 2)
    assert.equal(wx.calls(LOGIN), 2)
    assert.equal(wx.calls(ME), 2)
    assert.notEqual(wx.getStorageSync(KEY).refresh_token, forged)
  })

  test('the login after a session that is over fails: one attempt, and the caller gets its error', T, async (t) => {
    const { wx, client, user } = relogin
    // More refused exchanges than one attempt needs: a client that tried
    // again would be refused again, and counted.
    await fakeErrors(40029, 3)
    t.after(() => fakeErrors(0, 0))
    await assert.rejects(client.request({ url: ME }), (err) => {
      assert.ok(err instanceof WxLoginError)
      assert.equal(err.code, 'wechat_code_invalid')
      assert.equal(err.status, 401)
      assert.equal(err.problem.code, 'wechat_code_invalid')
      return true
    })
    assert.equal(wx.calls(REFRESH), 1)
    assert.equal(wx.log.find((c) => c.path === REFRESH).code, 'token_revoked')
    assert.equal(wx.calls('wx.login'), 2) // the first login and exactly one more
    assert.equal(wx.calls(LOGIN), 2)
    assert.equal(wx.log.filter((c) => c.path === LOGIN).at(-1).code, 'wechat_code_invalid')
    assert.equal(wx.calls(ME), 1) // not run again without a session
    assert.equal(client.isLoggedIn(), false)
    // Nothing is left under way: with WeChat answering again, login() works.
    await fakeErrors(0, 0)
    assert.equal((await client.login()).user.id, user.id)
    assert.equal((await client.request({ url: ME })).data.id, user.id)
  })

  test('a refresh answered 503 keeps the tokens and rejects; the session works once it is back', T, async () => {
    const { wx, client, user, stale } = outage
    await control('/identity/kill')
    try {
      await until(10000, 'the gateway to see identity gone', async () => {
        const r = await direct('GET', '/readyz')
        return r.status === 503 && r.body.down.includes('identity')
      })
      await assert.rejects(client.request({ url: ME }), (err) => err.code === 'service_unavailable' && err.status === 503)
      assert.equal(wx.calls(REFRESH), 1)
      assert.equal(wx.log.find((c) => c.path === REFRESH).code, 'service_unavailable')
      assert.deepEqual(wx.getStorageSync(KEY), stale)
      assert.equal(wx.calls('wx.login'), 1) // not logged out, not logged in again
    } finally {
      await control('/identity/start')
    }
    const me = await client.request({ url: ME })
    assert.equal(me.data.id, user.id)
    assert.equal(wx.calls(REFRESH), 2)
    assert.equal(wx.calls('wx.login'), 1)
  })

  test('logout with an expired access token refreshes first, so the session really ends', T, async () => {
    const { wx, client } = late
    await client.logout()
    assert.equal(wx.calls(REFRESH), 1)
    assert.equal(wx.calls(LOGOUT), 2) // token_expired, then with the refreshed token
    assert.equal(wx.getStorageSync(KEY), '')
    const last = wx.log.filter((c) => c.path === LOGOUT).at(-1)
    const fresh = last.header.Authorization.replace('Bearer ', '')
    assert.notEqual(fresh, late.stale.access_token)
    const me = await direct('GET', ME, { token: fresh })
    assert.equal(me.body.code, 'token_revoked')
  })
})
