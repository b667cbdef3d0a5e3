// @wxlogin/web: the browser client of wxlogin. An ES module without
// dependencies: the website QR login (WeChat's QR page in an iframe, or its
// URL), the official account's follow-to-log-in QR code, the in-WeChat
// login (authorize, then exchange), and a session whose fetch() refreshes
// the access token the way the API wants it spent. See README.md.
//
// Everything the browser provides (fetch, localStorage, indexedDB,
// sessionStorage, navigator.locks, location, history, the storage event)
// can be passed to createClient, so the module also runs, and is tested,
// under Node.

const API = 'api/v1/'

// The answers of a refresh after which the session cannot go on: the refresh
// token is spent (reused), revoked, unknown or expired, the user disabled.
// Anything else (503, 429, a network failure) leaves the session as it is.
const ENDS_SESSION = new Set(['refresh_token_reused', 'token_revoked', 'token_invalid', 'token_expired', 'user_disabled'])

// A refresh must not hold the cross-tab lock for ever when the network hangs,
// nor a shared store that does not answer (Safari has had IndexedDB opens
// that never end).
const REFRESH_TIMEOUT_MS = 15000
const STORE_TIMEOUT_MS = 5000

/** An error of the API (its problem+json `code`) or of this client. */
export class WxLoginError extends Error {
  constructor(message, { status = 0, code = '', problem = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'WxLoginError'
    this.status = status
    this.code = code
    this.problem = problem
    this.requestID = (problem && problem.request_id) || ''
  }
}

/** A Storage kept in memory: for pages that want no token in localStorage. */
export function memoryStorage() {
  const m = new Map()
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)) },
    removeItem: (k) => { m.delete(k) },
  }
}

/**
 * The src of WeChat's QR page as its WxLogin iframe shows it, from the
 * answer of POST /auth/web/qr. selfRedirect keeps WeChat's redirect to the
 * callback inside the frame (the page learns the outcome from its poll).
 */
export function wxLoginFrameURL(qr, { selfRedirect = true, style = 'black', href = '' } = {}) {
  const base = String(qr.qrconnect_url).split('#')[0]
  const q = new URLSearchParams({ login_type: 'jssdk', style, self_redirect: selfRedirect ? 'true' : 'default' })
  if (href) {
    q.set('href', href)
  }
  return base + (base.includes('?') ? '&' : '?') + q.toString()
}

// The browser's own, where there is one. Reading localStorage can throw (a
// sandboxed frame, storage disabled): then the session lives in memory.
function browserGlobal(name) {
  try {
    return globalThis[name] || null
  } catch {
    return null
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(signal.reason)
      return
    }
    const done = () => { signal && signal.removeEventListener('abort', stop); resolve() }
    const timer = setTimeout(done, Math.max(0, ms))
    const stop = () => { clearTimeout(timer); reject(signal.reason) }
    signal && signal.addEventListener('abort', stop, { once: true })
  })
}

// within settles as p does, or rejects after ms.
function within(p, ms) {
  let timer
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), ms) })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

// indexedDBStore is the default shared store: one record per key in the
// database "wxlogin". Unlike localStorage, whose copy in each renderer
// process is brought up to date asynchronously (a read just after another
// tab's write can be stale), IndexedDB has one backend: a transaction that
// has completed is seen by every transaction begun after it, in any tab.
function indexedDBStore(idb) {
  let opened = null
  const open = () => opened || (opened = new Promise((resolve, reject) => {
    const req = idb.open('wxlogin', 1)
    req.onupgradeneeded = () => req.result.createObjectStore('kv')
    req.onsuccess = () => {
      const db = req.result
      db.onversionchange = () => { db.close(); opened = null } // a newer page upgrades it
      db.onclose = () => { opened = null } // closed by the browser: site data cleared, say
      resolve(db)
    }
    req.onerror = () => reject(req.error)
  }).catch((e) => { opened = null; throw e }))
  // run resolves once the transaction is complete: for a write, once other
  // tabs can read it.
  const run = (mode, op) => open().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction('kv', mode)
    const req = op(tx.objectStore('kv'))
    tx.oncomplete = () => resolve(req.result)
    tx.onerror = tx.onabort = () => reject(tx.error || new Error('transaction aborted'))
  }))
  return {
    get: (key) => run('readonly', (s) => s.get(key)),
    set: (key, value) => run('readwrite', (s) => s.put(value, key)).then(() => {}),
    delete: (key) => run('readwrite', (s) => s.delete(key)).then(() => {}),
  }
}

function randomHex(bytes) {
  const b = new Uint8Array(bytes)
  globalThis.crypto.getRandomValues(b)
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}

// errorOf reads a non-2xx answer into a WxLoginError with its problem code.
async function errorOf(res) {
  let problem = null
  try {
    problem = JSON.parse(await res.text())
  } catch {
    // not JSON: a proxy's page, say
  }
  const code = problem && typeof problem.code === 'string' ? problem.code : ''
  const detail = problem && (problem.detail || problem.title)
  return new WxLoginError(`${res.status} ${code || res.statusText || 'error'}${detail ? ': ' + detail : ''}`,
    { status: res.status, code, problem })
}

// codeOf is the problem code of an answer, leaving its body to the caller.
async function codeOf(res) {
  try {
    const p = await res.clone().json()
    return p && typeof p.code === 'string' ? p.code : ''
  } catch {
    return ''
  }
}

function networkError(err) {
  return new WxLoginError('network error: ' + (err && err.message ? err.message : String(err)), { code: 'network_error', cause: err })
}

// stored is what the session keeps of a token answer.
function stored(b, user) {
  const now = Date.now()
  return {
    access_token: b.access_token,
    refresh_token: b.refresh_token,
    token_type: b.token_type || 'Bearer',
    expires_at: b.expires_in ? now + b.expires_in * 1000 : 0,
    refresh_expires_at: b.refresh_expires_in ? now + b.refresh_expires_in * 1000 : 0,
    user: b.user || user || null,
  }
}

// tokensOr is t if it is a stored session, else null.
function tokensOr(t) {
  return t && typeof t.access_token === 'string' && typeof t.refresh_token === 'string' ? t : null
}

function notBound(p) {
  return { status: 'not_bound', bind_token: p.bind_token, nickname: p.nickname || '', avatar_url: p.avatar_url || '' }
}

/**
 * The session: tokens kept in storage (localStorage by default, so every tab
 * of the site shares them), and a fetch() that adds the Bearer and, on 401
 * token_expired, refreshes once for every call in flight (and every tab,
 * under one lock), then sends the call once more. Inside the lock the
 * tokens are read from, and written to, the shared store (IndexedDB by
 * default): localStorage can lag behind another tab's write.
 *
 * Events: "login", "refresh" (detail: the tokens) and "logout" (detail:
 * {reason}: "logout", "other_tab", or the code of the refresh that ended it).
 */
class Session extends EventTarget {
  #api
  #key
  #lockName
  #storage
  #shared
  #locks
  #tokens
  #refreshing = null

  constructor(api, { storage, sharedStore, storageKey, locks, window: win }) {
    super()
    this.#api = api
    this.#key = storageKey
    this.#lockName = storageKey + '-refresh'
    this.#storage = storage
    this.#shared = sharedStore || null
    this.#locks = locks
    this.#tokens = this.#read()
    if (win && typeof win.addEventListener === 'function') {
      // Another tab logged in, refreshed or logged out (key null: cleared).
      win.addEventListener('storage', (e) => {
        if ((e.key === this.#key || e.key === null) && (!e.storageArea || e.storageArea === this.#storage)) {
          this.#sync()
        }
      })
    }
  }

  /** The tokens (a copy), or null when logged out. */
  get tokens() { return this.#tokens && { ...this.#tokens } }
  get user() { return this.#tokens && this.#tokens.user }
  get accessToken() { return this.#tokens ? this.#tokens.access_token : '' }
  get loggedIn() { return this.#tokens !== null }

  /** on(type, fn) adds a listener of the event's detail; it returns the remover. */
  on(type, fn) {
    const h = (e) => fn(e.detail)
    this.addEventListener(type, h)
    return () => this.removeEventListener(type, h)
  }

  /** set keeps the tokens of a login (a token answer of the API). */
  set(answer) {
    if (!answer || typeof answer.access_token !== 'string' || typeof answer.refresh_token !== 'string') {
      throw new WxLoginError('not a token answer', { code: 'invalid_tokens' })
    }
    this.#tokens = stored(answer)
    this.#write()
    this.#share(this.#tokens)
    this.#emit('login', this.tokens)
  }

  /**
   * fetch is window.fetch with the Bearer (sent to the API's origin only).
   * On 401 token_expired it refreshes (one refresh for all) and sends the
   * call once more. A refresh that fails rejects with its WxLoginError;
   * one answered with a session-ending code also logs out.
   */
  async fetch(input, init = {}) {
    if (this.#refreshing) {
      await this.#refreshing.catch(() => {}) // no point sending a token being replaced
    }
    const token = this.accessToken
    const res = await this.#send(input, init, token)
    if (res.status !== 401 || !token || (await codeOf(res)) !== 'token_expired') {
      return res
    }
    await this.#refreshAfter(token)
    return this.#send(input, init, this.accessToken)
  }

  /** refresh spends the refresh token now (unless another call or tab just did). */
  refresh() {
    if (!this.#tokens) {
      return Promise.reject(new WxLoginError('not logged in', { code: 'logged_out' }))
    }
    return this.#refreshAfter(this.accessToken)
  }

  /** me is GET /api/v1/me: the user and their identities. */
  async me() {
    const res = await this.fetch(API + 'me', { cache: 'no-store' })
    if (!res.ok) {
      throw await errorOf(res)
    }
    return res.json()
  }

  /**
   * logout ends the session on the server (the access token and its refresh
   * family) and here, in every tab. It is logged out locally even when the
   * server cannot be told; then it rejects with that error.
   */
  async logout() {
    if (!this.#tokens) {
      return
    }
    let err = null
    try {
      const res = await this.fetch(API + 'auth/logout', { method: 'POST', cache: 'no-store' })
      if (res.status !== 204 && res.status !== 401) {
        err = await errorOf(res)
      }
    } catch (e) {
      err = e
    }
    await this.#clear('logout')
    if (err && !(err instanceof WxLoginError && ENDS_SESSION.has(err.code))) {
      throw err
    }
  }

  #send(input, init, token) {
    const isRequest = typeof Request !== 'undefined' && input instanceof Request
    const target = isRequest ? input.clone() : this.#api.url(input)
    const headers = new Headers(isRequest ? input.headers : undefined)
    new Headers(init.headers).forEach((v, k) => headers.set(k, v))
    if (token && this.#api.owns(isRequest ? input.url : target)) {
      headers.set('Authorization', 'Bearer ' + token)
    }
    return this.#api.fetch(target, { ...init, headers })
  }

  // refreshAfter makes sure the access token `failed` is replaced: by this
  // tab's refresh in flight, by another tab's (read from the shared store),
  // or by a refresh of its own, in the cross-tab lock.
  #refreshAfter(failed) {
    if (this.#tokens && this.#tokens.access_token !== failed) {
      return Promise.resolve() // already replaced
    }
    if (!this.#refreshing) {
      this.#refreshing = this.#locked(() => this.#refreshLocked(failed)).finally(() => { this.#refreshing = null })
    }
    return this.#refreshing
  }

  async #refreshLocked(failed) {
    // Another tab may have refreshed (or logged out) while this one waited:
    // its refresh token is spent, and spending it again would be reuse.
    const now = await this.#current()
    if (!now) {
      // That tab cleared the storage itself; clearing it again here could
      // undo a login there since.
      this.#forget('other_tab')
      throw new WxLoginError('logged out in another tab', { code: 'logged_out' })
    }
    if (now.access_token !== failed) {
      this.#adopt(now)
      return
    }
    const ctl = typeof AbortController === 'function' ? new AbortController() : null
    const timer = ctl && setTimeout(() => ctl.abort(), REFRESH_TIMEOUT_MS)
    let res
    try {
      res = await this.#api.fetch(this.#api.url(API + 'auth/refresh'), {
        method: 'POST', cache: 'no-store', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: now.refresh_token }), signal: ctl ? ctl.signal : undefined,
      })
    } catch (e) {
      // Whether it was spent is unknown: never retried (the API counts a
      // second try as reuse); the next call that needs it tries again.
      throw networkError(e)
    } finally {
      clearTimeout(timer)
    }
    if (!res.ok) {
      const err = await errorOf(res)
      if (ENDS_SESSION.has(err.code)) {
        await this.#clear(err.code)
      }
      throw err
    }
    let b
    try {
      b = await res.json()
    } catch (e) {
      throw networkError(e)
    }
    this.#tokens = stored(b, now.user)
    this.#write()
    await this.#share(this.#tokens) // before the lock is let go: the next tab reads these
    this.#emit('refresh', this.tokens)
  }

  // locked runs fn under the cross-tab lock: the Web Locks API, else a
  // lease in storage (best effort: it narrows the race, Web Locks close it).
  #locked(fn) {
    if (this.#locks && typeof this.#locks.request === 'function') {
      return this.#locks.request(this.#lockName, fn)
    }
    return leased(this.#storage, this.#lockName, fn)
  }

  #read() {
    let raw = null
    try {
      raw = this.#storage.getItem(this.#key)
    } catch {
      return this.#tokens || null
    }
    if (!raw) {
      return null
    }
    try {
      return tokensOr(JSON.parse(raw))
    } catch {
      return null
    }
  }

  // current is the session as every tab has it, read in the lock: the
  // shared store's record (null once logged out), or storage's where the
  // store holds none (tokens from before it, a failed write) or fails.
  async #current() {
    if (this.#shared) {
      try {
        const t = await within(this.#shared.get(this.#key), STORE_TIMEOUT_MS)
        if (t !== undefined) {
          return tokensOr(t)
        }
      } catch {
        // go by storage
      }
    }
    return this.#read()
  }

  // share writes t (null: logged out) to the shared store, resolving once
  // other tabs can read it. A write that fails takes the record away, so
  // that no tab spends the refresh token it still holds.
  async #share(t) {
    if (!this.#shared) {
      return
    }
    try {
      await within(this.#shared.set(this.#key, t), STORE_TIMEOUT_MS)
    } catch {
      try {
        await within(this.#shared.delete(this.#key), STORE_TIMEOUT_MS)
      } catch {
        // nothing more to do: readers fall back to storage or give up
      }
    }
  }

  #write() {
    try {
      this.#storage.setItem(this.#key, JSON.stringify(this.#tokens))
    } catch {
      // full or disabled: this tab still has them in memory
    }
  }

  #adopt(t) {
    const was = this.#tokens
    this.#tokens = t
    this.#emit(was && was.user && t.user && was.user.id !== t.user.id ? 'login' : 'refresh', this.tokens)
  }

  #sync() {
    const now = this.#read()
    const was = this.#tokens
    if (!now) {
      if (was) {
        this.#tokens = null
        this.#emit('logout', { reason: 'other_tab' })
      }
      return
    }
    if (!was) {
      this.#tokens = now
      this.#emit('login', this.tokens)
    } else if (now.access_token !== was.access_token) {
      this.#adopt(now)
    }
  }

  // clear logs out here and in every tab; it resolves once the shared
  // store says so.
  #clear(reason) {
    try {
      this.#storage.removeItem(this.#key)
    } catch {
      // nothing to do
    }
    const shared = this.#share(null)
    this.#forget(reason)
    return shared
  }

  // forget logs this tab out, leaving the storage to whoever cleared it.
  #forget(reason) {
    const was = this.#tokens
    this.#tokens = null
    if (was) {
      this.#emit('logout', { reason })
    }
  }

  #emit(type, detail) {
    let ev
    if (typeof CustomEvent === 'function') {
      ev = new CustomEvent(type, { detail })
    } else {
      ev = new Event(type)
      ev.detail = detail
    }
    this.dispatchEvent(ev)
  }
}

// leased runs fn holding a lease in storage: write our id, let a racing
// tab's write land, and go ahead only if ours stands. A lease ends when fn
// does, or after 20 s (a tab closed mid-refresh).
async function leased(storage, name, fn) {
  const id = randomHex(8)
  const read = () => {
    try {
      return JSON.parse(storage.getItem(name) || 'null')
    } catch {
      return null
    }
  }
  for (;;) {
    const cur = read()
    if (!cur || cur.until < Date.now()) {
      storage.setItem(name, JSON.stringify({ id, until: Date.now() + 20000 }))
      await sleep(30)
      if ((read() || {}).id === id) {
        break
      }
    }
    await sleep(40 + Math.random() * 60)
  }
  try {
    return await fn()
  } finally {
    if ((read() || {}).id === id) {
      storage.removeItem(name)
    }
  }
}

const QR_PATHS = { web: API + 'auth/web/qr', follow: API + 'auth/oa/qr' }

/**
 * createClient returns the client of one wxlogin gateway. Options (all
 * optional): baseURL (the gateway, default: this page's origin; API paths
 * and the paths given to session.fetch resolve against it), bearerOrigins
 * (more origins session.fetch sends the Bearer to, besides the gateway's and
 * this page's), app (an app name of the gateway), storage (default localStorage),
 * sharedStore (where the refresh lock reads and writes the tokens; default
 * IndexedDB with localStorage, else none: storage itself),
 * storageKey (default "wxlogin"), and the browser's own fetch, locks
 * (navigator.locks), sessionStorage, location, history and window, which
 * tests replace; pollInterval (ms, default 1000) paces the QR polls.
 */
export function createClient(options = {}) {
  const fetchFn = options.fetch || ((...a) => globalThis.fetch(...a))
  const loc = options.location || browserGlobal('location')
  const baseURL = options.baseURL || (loc ? loc.origin + '/' : '')
  const base = baseURL ? String(baseURL).replace(/\/+$/, '') + '/' : ''
  const history = options.history || browserGlobal('history')
  const tabStorage = options.sessionStorage || browserGlobal('sessionStorage') || memoryStorage()
  const storageKey = options.storageKey || 'wxlogin'
  const pollInterval = options.pollInterval === undefined ? 1000 : options.pollInterval
  const maxFailures = 5
  const nav = browserGlobal('navigator')

  const origin = (u) => {
    try {
      return new URL(u, loc ? loc.href : undefined).origin
    } catch {
      return ''
    }
  }
  // The origins the Bearer may go to: the gateway's, this page's, and any
  // named in bearerOrigins (your own APIs that check the token).
  const trusted = new Set([base && origin(base), loc && origin(loc.href), ...(options.bearerOrigins || []).map(origin)].filter(Boolean))
  const api = {
    fetch: fetchFn,
    // url resolves an API path (or a path under baseURL); absolute URLs stay.
    url(path) {
      const p = String(path)
      if (/^[a-z][a-z0-9+.-]*:/i.test(p)) {
        return p
      }
      return base ? base + p.replace(/^\/+/, '') : p
    },
    // owns says whether url may carry the Bearer (see trusted).
    owns(url) {
      if (!/^[a-z][a-z0-9+.-]*:/i.test(String(url))) {
        return true // relative: this page's origin
      }
      return trusted.has(origin(url))
    },
  }

  // The shared store backs localStorage only: a page that keeps its tokens
  // in memory (or per tab) does not want them in IndexedDB.
  const local = browserGlobal('localStorage')
  const storage = options.storage || local || memoryStorage()
  const idb = browserGlobal('indexedDB')
  const session = new Session(api, {
    storage,
    sharedStore: options.sharedStore !== undefined ? options.sharedStore : (storage === local && idb ? indexedDBStore(idb) : null),
    storageKey,
    locks: options.locks !== undefined ? options.locks : nav && nav.locks,
    window: options.window !== undefined ? options.window : browserGlobal('window'),
  })

  const post = (path, body, extra = {}) => fetchFn(api.url(path), {
    method: 'POST', cache: 'no-store', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body), ...extra,
  }).catch((e) => { throw extra.signal && extra.signal.aborted ? extra.signal.reason : networkError(e) })

  const confirmed = (answer) => {
    session.set(answer)
    return { status: 'confirmed', user: answer.user || null, is_new_user: !!answer.is_new_user, tokens: answer }
  }

  // A login that answers tokens, or 403 wechat_not_bound with a bind token.
  const login = async (path, body, ok) => {
    const res = await post(path, body)
    if (res.status === ok) {
      return confirmed(await res.json())
    }
    const err = await errorOf(res)
    if (err.status === 403 && err.code === 'wechat_not_bound' && err.problem && err.problem.bind_token) {
      return notBound(err.problem)
    }
    throw err
  }

  const qrPath = (kind) => {
    const p = QR_PATHS[kind]
    if (!p) {
      throw new WxLoginError(`unknown QR kind ${kind}: "web" or "follow"`, { code: 'invalid_request' })
    }
    return p
  }

  /** createQR makes a ticket: "web" (WeChat's QR page) or "follow" (the official account's code). */
  async function createQR(kind, { signal } = {}) {
    // credentials: the answer sets the ticket's cookie, which binds the
    // callback to this browser.
    const res = await post(qrPath(kind), options.app ? { app: options.app } : {}, { credentials: 'include', signal })
    if (res.status !== 201) {
      throw await errorOf(res)
    }
    return res.json()
  }

  /**
   * waitQR long-polls a ticket until it ends: {status:"confirmed", …} (the
   * tokens are not kept: qrLogin does that), "denied", "not_bound" or
   * "expired". Network failures and 5xx are retried a few times; 429 waits.
   */
  async function waitQR(kind, qr, { signal } = {}) {
    const url = api.url(qrPath(kind) + '/' + encodeURIComponent(qr.ticket) + '?wait=25s')
    let failures = 0
    for (;;) {
      if (signal && signal.aborted) {
        throw signal.reason
      }
      const began = Date.now()
      let res
      try {
        res = await fetchFn(url, { credentials: 'include', cache: 'no-store', headers: { 'X-Poll-Token': qr.poll_token }, signal })
      } catch (e) {
        if (signal && signal.aborted) {
          throw signal.reason
        }
        if (++failures > maxFailures) {
          throw networkError(e)
        }
        await sleep(pollInterval * failures, signal)
        continue
      }
      if (res.status === 200) {
        failures = 0
        const b = await res.json()
        if (b.status === 'confirmed') {
          return { status: 'confirmed', user: b.user || null, is_new_user: !!b.is_new_user, tokens: b }
        }
        if (b.status === 'denied') {
          return { status: 'denied', reason: b.reason || 'denied' }
        }
        await sleep(pollInterval - (Date.now() - began), signal) // pending: never a tight loop
        continue
      }
      if (res.status === 404 || res.status === 410) {
        return { status: 'expired', code: await codeOf(res) }
      }
      if (res.status === 429) {
        const after = parseInt(res.headers.get('Retry-After') || '1', 10)
        await sleep(Math.max(1, after || 1) * 1000, signal)
        continue
      }
      if (res.status >= 500 && ++failures <= maxFailures) {
        await sleep(pollInterval * failures, signal)
        continue
      }
      const err = await errorOf(res)
      if (err.status === 403 && err.code === 'wechat_not_bound' && err.problem && err.problem.bind_token) {
        return notBound(err.problem)
      }
      throw err
    }
  }

  // qrLogin shows codes until one ends: a new code each time one expires
  // (up to restarts times), then the outcome; confirmed logs the session in.
  async function qrLogin(kind, { onCode, signal, restarts = 5 } = {}) {
    for (let n = 0; ; n++) {
      const qr = await createQR(kind, { signal })
      if (onCode) {
        onCode(qr, n)
      }
      const r = await waitQR(kind, qr, { signal })
      if (r.status === 'expired' && n < restarts) {
        continue
      }
      if (r.status === 'confirmed') {
        return confirmed(r.tokens)
      }
      return r
    }
  }

  const stateKey = storageKey + '.oa_state'

  return {
    session,
    createQR,
    waitQR,

    /** webLogin: the website QR login. onCode(qr) shows each code (wxLoginFrameURL(qr) for an iframe). */
    webLogin: (opts) => qrLogin('web', opts),

    /** followLogin: the official account's follow QR code. onCode(qr) shows qr.qr_url (or draws qr.qr_content). */
    followLogin: (opts) => qrLogin('follow', opts),

    /**
     * startInWeChatLogin sends this page (inside WeChat) to the official
     * account's authorization; WeChat and wxlogin send it back to
     * redirectURI (default: this page) with a one-time wxlogin_code.
     */
    startInWeChatLogin({ redirectURI, scope, state } = {}) {
      const st = state || randomHex(16)
      tabStorage.setItem(stateKey, st)
      const q = new URLSearchParams({ redirect_uri: redirectURI || (loc ? loc.href.split('#')[0] : ''), state: st })
      if (scope) {
        q.set('scope', scope)
      }
      if (options.app) {
        q.set('app', options.app)
      }
      const url = api.url(API + 'auth/oa/authorize') + '?' + q.toString()
      if (loc) {
        loc.assign(url)
      }
      return url
    },

    /**
     * completeInWeChatLogin finishes it on the page WeChat came back to:
     * null when the URL carries no answer; else the outcome of the exchange
     * ("confirmed", "not_bound", "denied" with WeChat's error). The code
     * leaves the address bar first; a state this tab did not start is refused.
     */
    async completeInWeChatLogin({ url } = {}) {
      const u = new URL(url || loc.href)
      const code = u.searchParams.get('wxlogin_code')
      const error = u.searchParams.get('error')
      if (!code && !error) {
        return null
      }
      const state = u.searchParams.get('state')
      for (const k of ['wxlogin_code', 'error', 'state']) {
        u.searchParams.delete(k)
      }
      if (history && typeof history.replaceState === 'function') {
        history.replaceState(history.state, '', u.href)
      }
      const mine = tabStorage.getItem(stateKey)
      tabStorage.removeItem(stateKey)
      if (!mine || state !== mine) {
        throw new WxLoginError('the state does not match: not a login this page started', { code: 'state_mismatch' })
      }
      if (error) {
        return { status: 'denied', reason: error }
      }
      return login(API + 'auth/oa/exchange', { code }, 200)
    },

    /** register makes an account ({username, password}, optionally bind_token or code) and logs it in. */
    register: (fields) => login(API + 'auth/register', fields, 201),

    /** bind attaches a WeChat identity (bind_token or code) to an existing account and logs it in. */
    bind: (fields) => login(API + 'auth/bind', fields, 200),

    /** passwordLogin logs in with {username, password}. */
    passwordLogin: (fields) => login(API + 'auth/password/login', fields, 200),
  }
}
