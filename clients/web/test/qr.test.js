import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createClient, memoryStorage, wxLoginFrameURL } from '../wxlogin.js'
import { BASE, gateway, json, locks, problem } from './fakes.js'

// qrGateway answers ticket creation with ticket-1, ticket-2, … and each
// ticket's polls from its script (the last answer repeats).
function qrGateway(createPath, scripts) {
  let n = 0
  const polls = {}
  const g = gateway({
    ['POST ' + createPath]: () => {
      n++
      return json(201, {
        ticket: 'ticket-' + n, poll_token: 'poll-' + n, expires_in: 300,
        qrconnect_url: 'https://open.weixin.qq.com/connect/qrconnect?appid=wx1&redirect_uri=x&response_type=code&scope=snsapi_login&state=ticket-' + n + '#wechat_redirect',
        wxlogin: { appid: 'wx1', scope: 'snsapi_login', redirect_uri: 'x', state: 'ticket-' + n },
        qr_url: 'https://mp.example/showqrcode?ticket=' + n, qr_content: 'http://weixin.qq.com/q/' + n,
      })
    },
  })
  const inner = g.fetch
  g.fetch = async (url, init) => {
    const u = new URL(String(url))
    if (u.pathname.startsWith(createPath + '/')) {
      const ticket = u.pathname.slice(createPath.length + 1)
      g.calls.push({ method: 'GET', path: createPath + '/{ticket}', ticket, url: u, headers: new Headers(init.headers), init })
      const script = scripts[ticket] || [() => problem(404, 'qr_ticket_not_found')]
      const i = polls[ticket] = (polls[ticket] || 0) + 1
      return script[Math.min(i, script.length) - 1]()
    }
    return inner(url, init)
  }
  return g
}

const pending = () => json(200, { status: 'pending' })
const expired = () => problem(410, 'qr_ticket_expired')

function client(g) {
  return createClient({ baseURL: BASE, fetch: g.fetch, storage: memoryStorage(), locks: locks(), window: null, pollInterval: 1 })
}

test('website QR: a new code when one expires (410), then the confirmed login is kept', async () => {
  const g = qrGateway('/api/v1/auth/web/qr', {
    'ticket-1': [pending, expired],
    'ticket-2': [pending, pending, () => json(200, { status: 'confirmed', ...gateway().issue({ id: 'u-9', nickname: 'Qi' }), is_new_user: true })],
  })
  const c = client(g)
  const codes = []
  const r = await c.webLogin({ onCode: (qr, n) => codes.push([qr.ticket, n]) })
  assert.equal(r.status, 'confirmed')
  assert.equal(r.user.nickname, 'Qi')
  assert.equal(r.is_new_user, true)
  assert.deepEqual(codes, [['ticket-1', 0], ['ticket-2', 1]])
  assert.equal(c.session.user.id, 'u-9')
  assert.equal(c.session.loggedIn, true)

  const creates = g.calls.filter((x) => x.method === 'POST')
  assert.equal(creates.length, 2)
  for (const x of creates) {
    assert.equal(x.init.credentials, 'include', 'the ticket cookie must be kept')
  }
  const polls = g.calls.filter((x) => x.path === '/api/v1/auth/web/qr/{ticket}')
  assert.deepEqual(polls.map((x) => x.ticket), ['ticket-1', 'ticket-1', 'ticket-2', 'ticket-2', 'ticket-2'])
  for (const x of polls) {
    assert.equal(x.headers.get('X-Poll-Token'), 'poll-' + x.ticket.slice(-1))
    assert.equal(x.url.searchParams.get('wait'), '25s')
    assert.equal(x.init.credentials, 'include')
  }
})

test('website QR: denied stops, no new code, nobody logged in', async () => {
  const g = qrGateway('/api/v1/auth/web/qr', { 'ticket-1': [pending, () => json(200, { status: 'denied', reason: 'denied' })] })
  const c = client(g)
  const r = await c.webLogin({ onCode: () => {} })
  assert.deepEqual(r, { status: 'denied', reason: 'denied' })
  assert.equal(g.calls.filter((x) => x.method === 'POST').length, 1)
  assert.equal(c.session.loggedIn, false)
})

test('website QR: after the restarts it ends expired', async () => {
  const g = qrGateway('/api/v1/auth/web/qr', {})
  const c = client(g)
  const r = await c.webLogin({ restarts: 2 })
  assert.equal(r.status, 'expired')
  assert.equal(r.code, 'qr_ticket_not_found')
  assert.equal(g.calls.filter((x) => x.method === 'POST').length, 3)
})

test('website QR: not bound hands back the bind token, and register logs in with it', async () => {
  const g = qrGateway('/api/v1/auth/web/qr', {
    'ticket-1': [() => problem(403, 'wechat_not_bound', { bind_token: 'bt-1', nickname: 'Nina', avatar_url: 'https://a/n.png' })],
  })
  const c = client(g)
  const r = await c.webLogin()
  assert.deepEqual(r, { status: 'not_bound', bind_token: 'bt-1', nickname: 'Nina', avatar_url: 'https://a/n.png' })

  const reg = qrGateway('/none', {})
  const inner = reg.fetch
  reg.fetch = (url, init) => (String(url).endsWith('/api/v1/auth/register') ? Promise.resolve(json(201, { ...reg.issue({ id: 'u-n', nickname: 'Nina' }), is_new_user: true })) : inner(url, init))
  const c2 = client(reg)
  const done = await c2.register({ username: 'nina', password: 'Nina-Secret-42', bind_token: r.bind_token })
  assert.equal(done.status, 'confirmed')
  assert.equal(c2.session.user.nickname, 'Nina')
})

test('QR polls ride out 5xx and network failures, wait on 429, and give up with the problem code', async () => {
  let thrown = 0
  const g = qrGateway('/api/v1/auth/web/qr', {
    'ticket-1': [
      () => problem(503, 'service_unavailable'),
      () => { thrown++; throw new TypeError('Failed to fetch') },
      () => problem(429, 'rate_limited', {}),
      () => json(200, { status: 'confirmed', ...gateway().issue() }),
    ],
  })
  const c = client(g)
  const r = await c.webLogin()
  assert.equal(r.status, 'confirmed')
  assert.equal(thrown, 1)

  const bad = qrGateway('/api/v1/auth/web/qr', { 'ticket-1': [() => problem(401, 'token_revoked')] })
  await assert.rejects(client(bad).webLogin(), { name: 'WxLoginError', code: 'token_revoked', status: 401 })
  const down = qrGateway('/api/v1/auth/web/qr', { 'ticket-1': [() => problem(503, 'service_unavailable')] })
  await assert.rejects(client(down).webLogin(), { code: 'service_unavailable' })
  const noTicket = gateway({ 'POST /api/v1/auth/web/qr': () => problem(503, 'service_unavailable') })
  await assert.rejects(client(noTicket).webLogin(), { code: 'service_unavailable' })
})

test('QR login stops when its signal aborts', async () => {
  const g = qrGateway('/api/v1/auth/web/qr', { 'ticket-1': [pending] })
  const ctl = new AbortController()
  const c = client(g)
  const run = c.webLogin({ signal: ctl.signal, onCode: () => setTimeout(() => ctl.abort(new Error('page left')), 20) })
  await assert.rejects(run, { message: 'page left' })
  const before = g.calls.length
  await new Promise((r) => setTimeout(r, 30))
  assert.equal(g.calls.length, before, 'no poll after the abort')
})

test('follow QR: the official account\'s code, polled on its own path', async () => {
  const g = qrGateway('/api/v1/auth/oa/qr', { 'ticket-1': [pending, () => json(200, { status: 'confirmed', ...gateway().issue() })] })
  const c = client(g)
  let shown
  const r = await c.followLogin({ onCode: (qr) => { shown = qr } })
  assert.equal(r.status, 'confirmed')
  assert.equal(shown.qr_url, 'https://mp.example/showqrcode?ticket=1')
  assert.equal(shown.qr_content, 'http://weixin.qq.com/q/1')
  assert.equal(g.calls.filter((x) => x.path === '/api/v1/auth/oa/qr/{ticket}').length, 2)
})

test('the app option names the gateway app in the ticket', async () => {
  const g = qrGateway('/api/v1/auth/web/qr', { 'ticket-1': [() => json(200, { status: 'denied', reason: 'denied' })] })
  const c = createClient({ baseURL: BASE + '/prefix/', app: 'shop', fetch: g.fetch, storage: memoryStorage(), locks: locks(), window: null, pollInterval: 1 })
  await assert.rejects(c.createQR('qq'), { code: 'invalid_request' })
  await c.webLogin().catch(() => {})
  assert.equal(g.calls[0].url.href, BASE + '/prefix/api/v1/auth/web/qr')
  assert.deepEqual(JSON.parse(g.calls[0].init.body), { app: 'shop' })
})

test('wxLoginFrameURL is WeChat\'s QR page as WxLogin frames it', () => {
  const qr = { qrconnect_url: 'https://open.weixin.qq.com/connect/qrconnect?appid=wx1&state=t#wechat_redirect' }
  const u = new URL(wxLoginFrameURL(qr))
  assert.equal(u.origin + u.pathname, 'https://open.weixin.qq.com/connect/qrconnect')
  assert.equal(u.hash, '')
  assert.equal(u.searchParams.get('appid'), 'wx1')
  assert.equal(u.searchParams.get('login_type'), 'jssdk')
  assert.equal(u.searchParams.get('self_redirect'), 'true')
  assert.equal(u.searchParams.get('style'), 'black')
  const top = new URL(wxLoginFrameURL(qr, { selfRedirect: false, style: 'white', href: 'https://site/qr.css' }))
  assert.equal(top.searchParams.get('self_redirect'), 'default')
  assert.equal(top.searchParams.get('style'), 'white')
  assert.equal(top.searchParams.get('href'), 'https://site/qr.css')
})
