'use strict'

// A wx for Node, for the tests only (not shipped): wx.request is real HTTP
// (Node's fetch) to the running stack, answered as the mini-program runtime
// answers (JSON bodies parsed into res.data, a transport failure through
// fail); wx.login mints a real code at the fake WeChat's control API for one
// fixed openid; storage is in memory. Every call is recorded, so a test can
// count the refreshes. (node --test runs this file too: it defines no test.)

const net = require('node:net')

const ENV = ['WXLOGIN_TEST_BASE_URL', 'WXLOGIN_TEST_FAKE_URL', 'WXLOGIN_TEST_APPID', 'WXLOGIN_TEST_CONTROL_URL']

// testEnv returns where the stack is; without it the tests cannot run, and
// they fail rather than pass.
function testEnv() {
  const missing = ENV.filter((k) => !process.env[k])
  if (missing.length > 0) {
    throw new Error(
      missing.join(', ') + ' not set: these tests need a running stack. Run them with\n' +
        '  cd services/devstack && go test -race -count=1 -run TestMiniProgramClientLibrary -v .\n' +
        'which starts gateway, identity and session against a fake WeChat and sets these variables.',
    )
  }
  return {
    baseURL: process.env.WXLOGIN_TEST_BASE_URL,
    fakeURL: process.env.WXLOGIN_TEST_FAKE_URL,
    appid: process.env.WXLOGIN_TEST_APPID,
    controlURL: process.env.WXLOGIN_TEST_CONTROL_URL,
  }
}

function queryString(data) {
  if (typeof data === 'string') return data
  return new URLSearchParams(Object.entries(data).map(([k, v]) => [k, String(v)])).toString()
}

function createFakeWx({ fakeURL, appid, openid, storage }) {
  const store = storage || new Map()
  // {path, method, header, status, code} per wx.request, {path: 'wx.login'} per wx.login
  const log = []
  const copy = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v))) // wx keeps copies

  return {
    storage: store,
    log,
    calls: (path) => log.filter((c) => c.path === path).length,

    login({ success, fail }) {
      log.push({ path: 'wx.login' })
      const minted = fetch(fakeURL + '/fake/codes', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ appid, openid }),
      }).then(async (r) => {
        const body = await r.json()
        if (r.status !== 201 || !body.code) throw new Error('POST /fake/codes: ' + r.status + ' ' + JSON.stringify(body))
        return { code: body.code, errMsg: 'login:ok' }
      })
      minted.then(success, (err) => fail({ errMsg: 'login:fail ' + err.message }))
    },

    request({ url, method = 'GET', data, header = {}, success, fail }) {
      const u = new URL(url)
      const entry = { path: u.pathname, method, header: { ...header } }
      log.push(entry)
      const init = { method, headers: { 'Content-Type': 'application/json', ...header } }
      if (data !== undefined && (method === 'GET' || method === 'HEAD')) {
        u.search = queryString(data) // as wx.request does
      } else if (data !== undefined) {
        init.body = typeof data === 'string' ? data : JSON.stringify(data)
      }
      const answered = fetch(u, init).then(async (r) => {
        const text = await r.text()
        let body = text
        try {
          body = JSON.parse(text) // wx.request's dataType 'json': parsed when it parses
        } catch {}
        entry.status = r.status
        entry.code = body && body.code // a problem's code
        return { statusCode: r.status, data: body, header: Object.fromEntries(r.headers), errMsg: 'request:ok' }
      })
      answered.then(success, (err) => fail({ errMsg: 'request:fail ' + ((err.cause && err.cause.code) || err.message) }))
    },

    setStorageSync: (key, value) => void store.set(key, copy(value)),
    getStorageSync: (key) => (store.has(key) ? copy(store.get(key)) : ''),
    removeStorageSync: (key) => void store.delete(key),
  }
}

// closedURL is an http URL where nothing listens: a port just given up.
function closedURL() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve('http://127.0.0.1:' + port))
    })
  })
}

// until checks cond every 100 ms until it holds; after limit ms it throws,
// naming what it waited for.
async function until(limit, what, cond) {
  const deadline = Date.now() + limit
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out after ' + limit + ' ms waiting for ' + what)
    await new Promise((r) => setTimeout(r, 100)) // the polling interval; the deadline bounds the wait
  }
}

module.exports = { testEnv, createFakeWx, closedURL, until }
