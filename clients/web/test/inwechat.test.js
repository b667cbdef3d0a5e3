import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createClient, memoryStorage } from '../wxlogin.js'
import { BASE, gateway, json, locks, page, problem } from './fakes.js'

function client(g, p, tabStorage = memoryStorage()) {
  return createClient({
    baseURL: BASE, fetch: g.fetch, storage: memoryStorage(), sessionStorage: tabStorage, locks: locks(),
    window: p.window, location: p.location, history: p.history,
  })
}

// back is where WeChat and the gateway send the tab: the redirect_uri with
// wxlogin_code (or error) and the site's state.
function back(authorizeURL, extra) {
  const q = new URL(authorizeURL).searchParams
  const u = new URL(q.get('redirect_uri'))
  u.searchParams.set('state', q.get('state'))
  for (const [k, v] of Object.entries(extra)) {
    u.searchParams.set(k, v)
  }
  return u.href
}

test('in-WeChat login: authorize with a fresh state, back with a code, exchanged once, out of the address bar', async () => {
  const exchanged = []
  const g = gateway({
    'POST /api/v1/auth/oa/exchange': (call, g) => {
      exchanged.push(call.body.code)
      return json(200, { ...g.issue({ id: 'u-oa', nickname: 'Pia' }), is_new_user: true })
    },
  })
  const p = page(BASE + '/h5/?mode=oa#top')
  const tabStorage = memoryStorage()
  const c = client(g, p, tabStorage)
  assert.equal(await c.completeInWeChatLogin(), null, 'no answer in the URL yet')

  const url = c.startInWeChatLogin({ scope: 'snsapi_base' })
  assert.deepEqual(p.location.assigned, [url])
  const q = new URL(url).searchParams
  assert.equal(new URL(url).pathname, '/api/v1/auth/oa/authorize')
  assert.equal(q.get('redirect_uri'), BASE + '/h5/?mode=oa')
  assert.equal(q.get('scope'), 'snsapi_base')
  assert.match(q.get('state'), /^[0-9a-f]{32}$/)
  const other = client(g, page(), memoryStorage()).startInWeChatLogin({ redirectURI: BASE + '/h5/' })
  assert.notEqual(new URL(other).searchParams.get('state'), q.get('state'))

  p.location.href = back(url, { wxlogin_code: 'wlc-1' })
  const r = await c.completeInWeChatLogin()
  assert.equal(r.status, 'confirmed')
  assert.equal(r.user.nickname, 'Pia')
  assert.deepEqual(exchanged, ['wlc-1'])
  assert.equal(c.session.user.id, 'u-oa')
  assert.deepEqual(p.history.replaced, [BASE + '/h5/?mode=oa'])
  assert.equal(await c.completeInWeChatLogin(), null, 'the code is gone from the URL')
})

test('in-WeChat login: a state this tab did not start is refused before any exchange', async () => {
  const g = gateway({ 'POST /api/v1/auth/oa/exchange': () => assert.fail('exchanged') })
  const p = page()
  const c = client(g, p)
  c.startInWeChatLogin({ redirectURI: BASE + '/h5/' })
  await assert.rejects(c.completeInWeChatLogin({ url: BASE + '/h5/?wxlogin_code=stolen&state=0123' }), { code: 'state_mismatch' })
  const fresh = client(g, page())
  await assert.rejects(fresh.completeInWeChatLogin({ url: BASE + '/h5/?wxlogin_code=stolen&state=0123' }), { code: 'state_mismatch' })
  assert.equal(g.calls.length, 0)
})

test('in-WeChat login: a refusal comes back denied; a spent code and not-bound are the API\'s answers', async () => {
  const p = page(BASE + '/h5/')
  const answers = [problem(400, 'login_code_invalid'), problem(403, 'wechat_not_bound', { bind_token: 'bt-2', nickname: 'Oa' })]
  const g = gateway({ 'POST /api/v1/auth/oa/exchange': () => answers.shift() })
  const c = client(g, p)

  const denied = c.startInWeChatLogin()
  p.location.href = back(denied, { error: 'access_denied' })
  assert.deepEqual(await c.completeInWeChatLogin(), { status: 'denied', reason: 'access_denied' })

  p.location.href = back(c.startInWeChatLogin(), { wxlogin_code: 'spent' })
  await assert.rejects(c.completeInWeChatLogin(), { name: 'WxLoginError', code: 'login_code_invalid', status: 400 })

  p.location.href = back(c.startInWeChatLogin(), { wxlogin_code: 'nb' })
  assert.deepEqual(await c.completeInWeChatLogin(), { status: 'not_bound', bind_token: 'bt-2', nickname: 'Oa', avatar_url: '' })
  assert.equal(c.session.loggedIn, false)
})
