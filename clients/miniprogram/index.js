'use strict'

// @wxlogin/miniprogram: a WeChat mini-program's login to wxlogin. Plain
// CommonJS with no dependencies and no syntax newer than async/await, so it
// runs as it is in the mini-program runtime and in Node for its tests.

const LOGIN_PATH = '/api/v1/auth/miniprogram/login'
const REFRESH_PATH = '/api/v1/auth/refresh'
const LOGOUT_PATH = '/api/v1/auth/logout'

// A refresh answered with one of these will never work: the session is over
// (spent or revoked token, family or user gone), so the client logs in again.
// Anything else (503, 429, a network failure) may pass: the tokens stay.
const SESSION_OVER = ['refresh_token_reused', 'token_revoked', 'token_invalid', 'token_expired']

// An access token answered with one of these is dead. Only token_expired is
// renewed: a session someone ended is not silently replaced.
const DEAD_TOKEN = ['token_revoked', 'token_invalid']

// WxLoginError is every failure the client reports. code is the server's
// problem code (docs/api.md) or one of the client's own: network_error,
// not_logged_in, logged_out, wx_login_failed, http_error, invalid_response.
class WxLoginError extends Error {
  constructor(code, message, extra) {
    super(message)
    const x = extra || {}
    this.name = 'WxLoginError'
    this.code = code
    this.status = x.status || 0
    this.problem = x.problem || null
    this.requestId = x.requestId || ''
    if (x.response) this.response = x.response
  }
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

// headerValue looks a response header up by name, whatever its case.
function headerValue(header, name) {
  if (!isObject(header)) return ''
  for (const k of Object.keys(header)) {
    if (k.toLowerCase() === name) return String(header[k])
  }
  return ''
}

// errorFromResponse turns a 4xx/5xx answer into a WxLoginError carrying its
// problem+json members.
function errorFromResponse(res) {
  const p = isObject(res.data) && typeof res.data.code === 'string' ? res.data : null
  const requestId = (p && typeof p.request_id === 'string' && p.request_id) || headerValue(res.header, 'x-request-id')
  const extra = { status: res.statusCode, problem: p, requestId: requestId, response: res }
  if (!p) return new WxLoginError('http_error', 'HTTP ' + res.statusCode, extra)
  return new WxLoginError(p.code, p.detail || p.title || p.code, extra)
}

function isTokenExpired(res) {
  return res.statusCode === 401 && isObject(res.data) && res.data.code === 'token_expired'
}

function notLoggedIn() {
  return new WxLoginError('not_logged_in', 'no session: call login() first')
}

function loggedOut() {
  return new WxLoginError('logged_out', 'logout() was called meanwhile')
}

// tokensOf checks a token response (login or refresh).
function tokensOf(res) {
  const d = res.data
  if (!isObject(d) || typeof d.access_token !== 'string' || typeof d.refresh_token !== 'string' || !d.access_token || !d.refresh_token) {
    throw new WxLoginError('invalid_response', 'the token response holds no tokens', { status: res.statusCode, response: res })
  }
  return d
}

// withBearer copies header with the Authorization replaced by ours.
function withBearer(header, token) {
  const out = {}
  if (isObject(header)) {
    for (const k of Object.keys(header)) {
      if (k.toLowerCase() !== 'authorization') out[k] = header[k]
    }
  }
  out.Authorization = 'Bearer ' + token
  return out
}

/**
 * createClient returns a client of the wxlogin gateway at options.baseURL.
 * See index.d.ts and README.md.
 */
function createClient(options) {
  const opts = options || {}
  /* global wx */
  const wxapi = opts.wx || (typeof wx !== 'undefined' ? wx : null)
  if (!wxapi || typeof wxapi.request !== 'function' || typeof wxapi.login !== 'function') {
    throw new TypeError('createClient: no wx API (pass options.wx outside a mini-program)')
  }
  if (typeof opts.baseURL !== 'string' || !/^https?:\/\/[^/]/i.test(opts.baseURL)) {
    throw new TypeError('createClient: baseURL must be an http(s) URL, e.g. https://api.example.com')
  }
  const base = opts.baseURL.replace(/\/+$/, '')
  const storageKey = opts.storageKey || 'wxlogin_tokens'
  const app = opts.app || ''

  let renewing = null // the refresh (or re-login) every call in flight waits for
  let loggingIn = null // the login every caller shares
  let epoch = 0 // counts logouts: what an older operation obtains is not kept

  function load() {
    const t = wxapi.getStorageSync(storageKey)
    return isObject(t) && t.access_token && t.refresh_token ? t : null
  }
  function save(t) {
    wxapi.setStorageSync(storageKey, { access_token: t.access_token, refresh_token: t.refresh_token })
  }
  function clear() {
    wxapi.removeStorageSync(storageKey)
  }

  // send is wx.request as a promise: it resolves with any HTTP answer and
  // rejects (network_error) only when there is none.
  function send(req) {
    return new Promise(function (resolve, reject) {
      wxapi.request({
        url: req.url,
        method: req.method || 'GET',
        data: req.data,
        header: req.header,
        success: function (res) {
          resolve({ statusCode: res.statusCode, data: res.data, header: res.header || {} })
        },
        fail: function (err) {
          const msg = (err && err.errMsg) || 'no answer'
          reject(new WxLoginError('network_error', 'wx.request ' + req.url + ': ' + msg))
        },
      })
    })
  }

  // post calls one of the auth routes and rejects on an error answer.
  async function post(path, body, token) {
    const header = { 'Content-Type': 'application/json' }
    const res = await send({ url: base + path, method: 'POST', data: body, header: token ? withBearer(header, token) : header })
    if (res.statusCode >= 400) throw errorFromResponse(res)
    return res
  }

  function wxLogin() {
    return new Promise(function (resolve, reject) {
      wxapi.login({
        success: function (res) {
          if (res && typeof res.code === 'string' && res.code) resolve(res.code)
          else reject(new WxLoginError('wx_login_failed', 'wx.login gave no code'))
        },
        fail: function (err) {
          reject(new WxLoginError('wx_login_failed', 'wx.login: ' + ((err && err.errMsg) || 'failed')))
        },
      })
    })
  }

  async function doLogin(userInfo) {
    const started = epoch
    for (let attempt = 1; ; attempt++) {
      const body = { code: await wxLogin() }
      if (app) body.app = app
      if (userInfo) body.user_info = userInfo
      let t
      try {
        t = tokensOf(await post(LOGIN_PATH, body))
      } catch (err) {
        // A code WeChat has seen already (a stale one, a double tap): a
        // fresh wx.login, once.
        if (err.code === 'wechat_code_used' && attempt === 1) continue
        throw err
      }
      if (epoch !== started) throw loggedOut()
      save(t)
      return { user: t.user, is_new_user: t.is_new_user === true }
    }
  }

  // loginOnce is the login in flight, or a new one.
  function loginOnce(userInfo) {
    if (!loggingIn) {
      loggingIn = (async function () {
        try {
          return await doLogin(userInfo)
        } finally {
          loggingIn = null
        }
      })()
    }
    return loggingIn
  }

  // renew replaces the access token stale, which the server called
  // expired, with one refresh shared by every caller: refresh tokens are
  // single-use, and a second refresh with the same one would make the
  // server revoke the whole session. A call whose 401 arrives after the
  // refresh finds a newer token stored and refreshes nothing. With relogin,
  // a session that is over is replaced by a new login (shared as well).
  function renew(stale, relogin) {
    if (renewing) return renewing
    const t = load()
    if (!t || t.access_token !== stale) return Promise.resolve()
    renewing = (async function () {
      try {
        await refresh(t, relogin)
      } finally {
        renewing = null
      }
    })()
    return renewing
  }

  async function refresh(t, relogin) {
    const started = epoch
    let res
    try {
      res = await post(REFRESH_PATH, { refresh_token: t.refresh_token })
    } catch (err) {
      if (SESSION_OVER.indexOf(err.code) < 0) throw err // the tokens stay: nothing was spent
      if (epoch !== started) return
      clear()
      if (relogin) await loginOnce()
      return
    }
    const next = tokensOf(res)
    if (epoch === started) save(next) // else logged out meanwhile: these are revoked
  }

  function resolveURL(url) {
    if (typeof url !== 'string' || url === '') throw new TypeError('request: url is required')
    // Only paths under baseURL: the access token goes to no other host.
    if (/^[a-z][a-z0-9+.-]*:/i.test(url) || url.indexOf('//') === 0) {
      throw new TypeError('request: url must be a path relative to baseURL, not ' + url)
    }
    return base + (url.charAt(0) === '/' ? url : '/' + url)
  }

  async function request(req) {
    const r = req || {}
    const url = resolveURL(r.url)
    const call = function (token) {
      return send({ url: url, method: r.method, data: r.data, header: withBearer(r.header, token) })
    }
    let t = load()
    if (!t && loggingIn) {
      await loggingIn // the first login of a launch, still under way
      t = load()
    }
    if (!t) throw notLoggedIn()
    let res = await call(t.access_token)
    if (isTokenExpired(res)) {
      await renew(t.access_token, true)
      t = load()
      if (!t) throw notLoggedIn()
      res = await call(t.access_token)
    }
    if (res.statusCode >= 400) {
      const err = errorFromResponse(res)
      // Ended elsewhere (logout on another device, an admin): these tokens
      // will never work again, so they are not kept to fail at every launch.
      if (res.statusCode === 401 && DEAD_TOKEN.indexOf(err.code) >= 0) {
        const now = load()
        if (now && now.access_token === t.access_token) clear()
      }
      throw err
    }
    return res
  }

  // logout ends the session on the server (an expired access token is
  // refreshed first, so the session really ends) and removes the tokens
  // from storage, also when the server cannot be told.
  async function logout() {
    try {
      let t = load()
      if (!t) return
      const end = function (tokens) {
        return send({
          url: base + LOGOUT_PATH, method: 'POST', data: { refresh_token: tokens.refresh_token },
          header: withBearer({ 'Content-Type': 'application/json' }, tokens.access_token),
        })
      }
      let res = await end(t)
      if (isTokenExpired(res)) {
        await renew(t.access_token, false)
        t = load()
        if (!t) return // the session had ended already
        res = await end(t)
      }
      if (res.statusCode >= 400) throw errorFromResponse(res)
    } finally {
      epoch++
      clear()
    }
  }

  return {
    login: function (params) {
      return loginOnce(params && params.userInfo)
    },
    request: request,
    logout: logout,
    isLoggedIn: function () {
      return load() !== null
    },
  }
}

module.exports = { createClient: createClient, WxLoginError: WxLoginError }
