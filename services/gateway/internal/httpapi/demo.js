// The demo page's script (GET /demo). Every login on it goes through the
// browser client, clients/web, which the gateway serves as
// /clients/web/wxlogin.js: the website QR login (?mode=iframe, the default;
// ?mode=top and ?mode=redirect only create the ticket and leave the rest to
// WeChat and the callback page), the follow QR code (?mode=follow) and the
// in-WeChat login (?mode=oa); the buttons use its session.
import { createClient, wxLoginFrameURL } from '../../clients/web/wxlogin.js'

const $ = (id) => document.getElementById(id)
const mode = new URLSearchParams(location.search).get('mode') || 'iframe'
const follow = mode === 'follow'
const qrPath = follow ? 'api/v1/auth/oa/qr' : 'api/v1/auth/web/qr'
if (mode !== 'oa') {
  $(follow ? 'tab-follow' : 'tab-web').setAttribute('aria-current', 'page')
}

// The API lives next to /demo (also behind a proxy's path prefix).
const wx = createClient({ baseURL: new URL('.', location.href).href })
const session = wx.session
let login = null // the QR login on screen: aborted when another starts

function show(id, on) { $(id).classList.toggle('hidden', !on) }

function setStatus(state, zh, en) {
  const el = $('status')
  el.dataset.status = state
  el.textContent = zh + ' · ' + en
  $('status-line').dataset.status = state
}

function fail(msg) {
  setStatus('error', '出错了', 'Something went wrong: ' + msg)
  show('retry', true)
}

function output(lines) { $('output').textContent = lines.join('\n') }

function b64urlDecode(s) {
  s = s.replaceAll('-', '+').replaceAll('_', '/')
  while (s.length % 4) { s += '=' }
  return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)))
}

// decodeJWT reads a token for display; the gateway is what checks it.
function decodeJWT(token) {
  const parts = String(token).split('.')
  if (parts.length !== 3) { throw new Error('not a JWT') }
  return { header: JSON.parse(b64urlDecode(parts[0])), payload: JSON.parse(b64urlDecode(parts[1])) }
}

function showTokens() {
  try {
    const jwt = decodeJWT(session.accessToken)
    $('jwt-header').textContent = JSON.stringify(jwt.header, null, 2)
    $('claims').textContent = JSON.stringify(jwt.payload, null, 2)
  } catch (e) {
    $('jwt-header').textContent = ''
    $('claims').textContent = 'cannot decode the access token: ' + e.message
  }
}

// placeholderAvatar is a letter on green, for users without a (loadable) avatar.
function placeholderAvatar(name) {
  let ch = String(name || '?').trim().charAt(0).toUpperCase() || '?'
  ch = ch.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#07c160"/>' +
    '<text x="32" y="43" text-anchor="middle" font-family="sans-serif" font-size="30" fill="#fff">' + ch + '</text></svg>'
  return 'data:image/svg+xml,' + encodeURIComponent(svg)
}

function setAvatar(img, src, name) {
  const fallback = placeholderAvatar(name)
  img.onerror = () => { img.onerror = null; img.src = fallback }
  img.src = src || fallback
}

// showUser shows the session's user and token (after a login here, in
// another tab, or on load).
function showUser(isNew) {
  const u = session.user || {}
  setStatus('confirmed', '登录成功', 'Logged in')
  for (const id of ['login-card', 'intro-card', 'bind-card', 'retry']) { show(id, false) }
  show('user-card', true)
  show('token-card', true)
  $('user-nickname').textContent = u.nickname || u.username || '(no nickname)'
  $('user-id').textContent = u.id || ''
  $('user-username').textContent = u.username ? 'username: ' + u.username : ''
  show('user-new', !!isNew)
  setAvatar($('user-avatar'), u.avatar_url, u.nickname || u.username)
  showTokens()
}

function loggedOut(lines) {
  setStatus('logged_out', '已退出登录', 'Logged out')
  show('retry', true)
  show('login-card', true)
  show('user-card', false)
  show('token-card', lines.length > 0)
  $('qr-frame').removeAttribute('src')
  if (lines.length) { output(lines) }
}

// outcome shows how a login ended.
function outcome(r, how) {
  switch (r.status) {
    case 'confirmed': {
      const t = r.tokens
      showUser(r.is_new_user)
      output(how.concat(['expires_in: ' + t.expires_in + ' s, refresh_expires_in: ' + t.refresh_expires_in + ' s']))
      return
    }
    case 'not_bound': return notBound(r)
    case 'denied': return denied(r.reason)
    case 'expired': return expired()
  }
}

function failed(e) {
  if (e && e.name === 'AbortError') { return }
  fail(e && e.message ? e.message : String(e))
}

function start() {
  if (login) { login.abort() }
  login = new AbortController()
  const signal = login.signal
  for (const id of ['retry', 'user-card', 'token-card', 'bind-card']) { show(id, false) }
  show('login-card', true)
  show('intro-card', true)
  $('qr-frame').removeAttribute('src')
  show('qr-box', !follow)
  show('follow-box', follow)
  if (mode === 'oa') { inWeChat(); return }
  if (session.loggedIn) { showUser(false); output(['restored from localStorage: this site is logged in (in this tab or another)']); return }
  setStatus('pending', '正在生成二维码…', 'Creating a QR code…')

  if (mode === 'redirect' || mode === 'top') {
    // ?mode=redirect: this page goes to WeChat's QR page, which sends the
    // browser on to the callback (a site's "log in with WeChat" link).
    // ?mode=top: the frame sends the top window to the callback, whose
    // page ends the login. Either way nobody polls here.
    wx.createQR('web', { signal }).then((qr) => {
      if (mode === 'redirect') { location.href = qr.qrconnect_url; return }
      $('qr-frame').src = wxLoginFrameURL(qr, { selfRedirect: false })
      setStatus('pending', '请使用微信扫描二维码', 'Scan the QR code with WeChat')
    }).catch(failed)
    return
  }

  const onCode = (qr, restart) => {
    if (follow) {
      $('follow-qr').src = qr.qr_url
      $('follow-link').href = qr.qr_content
    } else {
      // As wxLogin.js does: the QR page in a sandboxed iframe; with
      // self_redirect the callback stays in the frame and the poll answers here.
      $('qr-frame').src = wxLoginFrameURL(qr)
    }
    const again = restart > 0 ? '（已过期，换了新码）' : ''
    const againEn = restart > 0 ? ' (the last one expired: a new code)' : ''
    setStatus('pending', (follow ? '请使用微信扫码关注' : '请使用微信扫描二维码') + again, (follow ? 'Scan with WeChat and follow' : 'Scan the QR code with WeChat') + againEn)
  }
  const run = follow ? wx.followLogin({ onCode, signal }) : wx.webLogin({ onCode, signal })
  // Aborted: another login replaced this one (a confirmed login here also
  // fires the session's login event, which aborts it).
  run.then((r) => {
    if (r.status === 'confirmed' || !signal.aborted) { outcome(r, ['POST /' + qrPath + ' → 201', 'GET /' + qrPath + '/{ticket} → 200 ' + r.status]) }
  }, (e) => { if (!signal.aborted) { failed(e) } })
}

// inWeChat is the in-WeChat browser login (?mode=oa), this page being the
// H5 page: off to /api/v1/auth/oa/authorize (and WeChat's authorization
// page, "opened as the phone would"), back here with a one-time
// wxlogin_code and our state, which the exchange turns into the tokens.
function inWeChat() {
  show('login-card', false)
  wx.completeInWeChatLogin().then((r) => {
    if (r) { outcome(r, ['POST /api/v1/auth/oa/exchange → 200']); return }
    if (session.loggedIn) { showUser(false); return }
    setStatus('pending', '正在前往微信授权…', 'Going to WeChat\'s authorization…')
    wx.startInWeChatLogin({ redirectURI: location.origin + location.pathname + '?mode=oa' })
  }).catch(failed)
}

// notBound: auto-register is off and this WeChat user has no account yet.
// The bind token (single use, 10 minutes) lets the user register one that
// the WeChat identity is attached to, without scanning again.
// Whose WeChat it is comes first: a login started elsewhere must not end
// with someone else's WeChat bound to this person's account.
function notBound(r) {
  setStatus('not_bound', '微信尚未关联账号', 'This WeChat account is not linked yet')
  show('login-card', false)
  show('bind-card', true)
  $('bind-nickname').textContent = r.nickname || '(WeChat did not tell the nickname)'
  setAvatar($('bind-avatar'), r.avatar_url, r.nickname)
  $('bind-form').onsubmit = (ev) => {
    ev.preventDefault()
    wx.register({ username: $('bind-username').value, password: $('bind-password').value, bind_token: r.bind_token })
      .then((done) => outcome(done, ['POST /api/v1/auth/register → 201']), failed)
  }
}

function denied(reason) {
  setStatus('denied', '已拒绝登录', 'Login denied' + (reason && reason !== 'denied' ? ' (' + reason + ')' : ''))
  show('retry', true)
}

function expired() {
  setStatus('expired', '二维码已过期', 'The QR code expired')
  show('retry', true)
}

// me says what GET /api/v1/me answered.
async function me(res) {
  const body = await res.text()
  let text = body
  try { text = JSON.stringify(JSON.parse(body), null, 2) } catch { /* not JSON */ }
  return 'GET /api/v1/me → ' + res.status + '\n' + text
}

// Another tab logged in, refreshed or out: this one follows.
session.on('login', () => { if (login) { login.abort() } showUser(false) })
session.on('refresh', showTokens)
session.on('logout', ({ reason }) => {
  if (reason === 'logout') { return } // this tab's button, which says more
  loggedOut(reason === 'other_tab' ? ['另一个标签页已退出登录 · logged out in another tab'] : ['会话已结束 · the session ended: ' + reason])
})

$('retry').addEventListener('click', start)

$('call-me').addEventListener('click', () => {
  session.fetch('api/v1/me', { cache: 'no-store' })
    .then(me)
    .then((t) => output([t]), (e) => output(['GET /api/v1/me failed: ' + (e.code || '') + ' ' + e.message]))
})

$('refresh').addEventListener('click', () => {
  const btn = $('refresh')
  btn.disabled = true
  session.refresh().then(() => {
    showTokens()
    output(['POST /api/v1/auth/refresh → 200', 'a new access token and refresh token; the old refresh token is spent'])
  }, (e) => output(['POST /api/v1/auth/refresh → ' + e.message])).finally(() => { btn.disabled = false })
})

$('logout').addEventListener('click', () => {
  const btn = $('logout')
  const old = session.accessToken
  btn.disabled = true
  session.logout().then(() => 'POST /api/v1/auth/logout → 204', (e) => 'POST /api/v1/auth/logout → ' + e.message)
    // Show that the old access token is refused at once.
    .then((said) => fetch('api/v1/me', { headers: { Authorization: 'Bearer ' + old }, cache: 'no-store' })
      .then(me)
      .then((me) => loggedOut([said, '', '旧令牌已失效 · the old token is refused now:', me])))
    .catch((e) => output(['network error: ' + e.message]))
    .finally(() => { btn.disabled = false })
})

start()
