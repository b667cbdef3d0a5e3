// The wxlogin admin console. It talks to the public API of the gateway it
// came from (relative URLs, so a path prefix in front of the gateway works)
// and keeps the admin's tokens in this closure only: no web storage, no
// cookie, gone with the tab. It builds the DOM with textContent
// only, so nothing a user typed into a profile can inject markup.
(function () {
  "use strict";

  // ---- Texts ---------------------------------------------------------------

  var TEXT = {
    en: {
      brand: "wxlogin admin", nav_dashboard: "Dashboard", nav_users: "Users", nav_audit: "Audit log",
      sign_in: "Sign in", sign_out: "Sign out", signin_title: "Sign in to the admin console",
      signin_intro: "Administrators only: sign in with your username and password, or scan the QR code with your WeChat.",
      signin_password: "Password", signin_wechat: "WeChat", username: "Username", password: "Password",
      qr_intro: "Scan the code with the WeChat of an administrator.", qr_show: "Show the QR code", qr_again: "Show a new QR code",
      qr_creating: "Creating a QR code…", qr_scan: "Scan the QR code with WeChat", qr_denied: "The login was denied on the phone.",
      qr_expired: "The QR code expired.", qr_not_bound: "This WeChat is not linked to any account.",
      not_admin: "This account is not an administrator. Its session has been ended.",
      not_admin_now: "This account is no longer an administrator. Its session has been ended.",
      session_ended: "Your session has ended; sign in again.", signed_out: "Signed out.",
      invalid_credentials: "Wrong username or password.", user_disabled: "This account is disabled.",
      rate_limited: "Too many attempts; wait a moment.", service_unavailable: "The service is unavailable; try again shortly.",
      network_error: "Network error.", error: "Something went wrong",
      users_total: "Users", users_new_24h: "New, last 24 h", users_new_7d: "New, last 7 days", users_disabled: "Disabled",
      logins_24h: "Logins in the last 24 h, by kind",
      kind_miniprogram: "Mini-program", kind_web: "Website QR", kind_officialaccount: "Official account", kind_app: "Mobile app",
      kind_password: "Password",
      search_placeholder: "Username, nickname, phone, email, openid or unionid", search: "Search", sort: "Sort",
      sort_newest: "Newest first", sort_oldest: "Oldest first", sort_last_login: "Last login",
      nickname: "Nickname", identities: "Identities", created: "Created", last_login: "Last login", state: "State",
      no_users: "No user matches.", prev: "Previous", next: "Next", page_of: "Page {page} of {pages} · {total} in all",
      active: "Active", disabled: "Disabled", admin: "Admin", never: "never",
      disable: "Disable", enable: "Enable", grant_admin: "Make admin", revoke_admin: "Revoke admin",
      profile: "Profile", profile_readonly: "Fields marked WeChat come from WeChat and are read-only.", wechat: "WeChat",
      kind: "Kind", client: "Client", last_used: "Last used", expires: "Expires", sessions: "Sessions",
      revoke: "Revoke", revoke_all: "Revoke all", no_sessions: "No live session.",
      recent_audit: "Recent admin actions on this user", when: "When", actor: "Who", action: "Action", target: "On whom",
      detail: "Detail", no_audit: "Nothing yet.", filter: "Filter", clear: "Clear",
      filter_actor: "Who (username or id)", filter_target: "On whom (username or id)", filter_action: "Action",
      no_such_user: "No user {name}.", cli: "the command line", cancel: "Cancel", confirm: "Confirm",
      confirm_disable: "Disable {name}? Every session of this user ends at once.",
      confirm_enable: "Enable {name} again?", confirm_grant: "Make {name} an administrator?",
      confirm_revoke_admin: "Take the administrator rights of {name}?",
      confirm_revoke: "Revoke this session of {name}? Its tokens stop working at once.",
      confirm_revoke_all: "Revoke all {count} sessions of {name}?",
      done_disable: "{name} is disabled.", done_enable: "{name} is enabled.", done_grant: "{name} is an administrator now.",
      done_revoke_admin: "{name} is no administrator any more.", done_revoke: "The session is revoked.",
      done_revoke_all: "All sessions are revoked.", last_admin: "The last administrator cannot lose the rights.",
      gender: "Gender", gender_0: "unknown", gender_1: "male", gender_2: "female", language: "Language", city: "City",
      province: "Province", country: "Country", avatar_url: "Avatar", phone_number: "Phone", email: "Email",
      date_of_birth: "Date of birth", description: "Description", id: "ID",
      action_user_disable: "disabled the user", action_user_enable: "enabled the user",
      action_user_grant_admin: "made admin", action_user_revoke_admin: "took the admin rights",
      action_session_revoke: "revoked a session", action_session_revoke_all: "revoked all sessions"
    },
    zh: {
      brand: "wxlogin 管理后台", nav_dashboard: "概览", nav_users: "用户", nav_audit: "审计日志",
      sign_in: "登录", sign_out: "退出登录", signin_title: "登录管理后台",
      signin_intro: "仅限管理员：使用用户名和密码登录，或用微信扫描二维码。",
      signin_password: "密码登录", signin_wechat: "微信扫码", username: "用户名", password: "密码",
      qr_intro: "请使用管理员的微信扫描二维码。", qr_show: "显示二维码", qr_again: "重新生成二维码",
      qr_creating: "正在生成二维码…", qr_scan: "请使用微信扫描二维码", qr_denied: "已在手机上拒绝登录。",
      qr_expired: "二维码已过期。", qr_not_bound: "此微信尚未关联任何账号。",
      not_admin: "此账号不是管理员，已结束其会话。",
      not_admin_now: "此账号已不再是管理员，已结束其会话。",
      session_ended: "会话已结束，请重新登录。", signed_out: "已退出登录。",
      invalid_credentials: "用户名或密码错误。", user_disabled: "此账号已被停用。",
      rate_limited: "尝试次数过多，请稍候。", service_unavailable: "服务暂不可用，请稍后重试。",
      network_error: "网络错误。", error: "出错了",
      users_total: "用户总数", users_new_24h: "近 24 小时新增", users_new_7d: "近 7 天新增", users_disabled: "已停用",
      logins_24h: "近 24 小时登录（按方式）",
      kind_miniprogram: "小程序", kind_web: "网站扫码", kind_officialaccount: "公众号", kind_app: "移动应用",
      kind_password: "密码",
      search_placeholder: "用户名、昵称、手机号、邮箱、openid 或 unionid", search: "搜索", sort: "排序",
      sort_newest: "最新注册", sort_oldest: "最早注册", sort_last_login: "最近登录",
      nickname: "昵称", identities: "身份", created: "创建时间", last_login: "最近登录", state: "状态",
      no_users: "没有匹配的用户。", prev: "上一页", next: "下一页", page_of: "第 {page} / {pages} 页 · 共 {total} 个",
      active: "正常", disabled: "已停用", admin: "管理员", never: "从未",
      disable: "停用", enable: "启用", grant_admin: "设为管理员", revoke_admin: "取消管理员",
      profile: "资料", profile_readonly: "标有“微信”的字段来自微信，只读。", wechat: "微信",
      kind: "方式", client: "客户端", last_used: "最近使用", expires: "过期时间", sessions: "会话",
      revoke: "撤销", revoke_all: "全部撤销", no_sessions: "没有有效会话。",
      recent_audit: "针对此用户的管理操作", when: "时间", actor: "操作人", action: "操作", target: "对象",
      detail: "详情", no_audit: "暂无记录。", filter: "筛选", clear: "清除",
      filter_actor: "操作人（用户名或 ID）", filter_target: "对象（用户名或 ID）", filter_action: "操作",
      no_such_user: "没有用户 {name}。", cli: "命令行", cancel: "取消", confirm: "确认",
      confirm_disable: "确定停用 {name}？此用户的所有会话将立即失效。",
      confirm_enable: "确定重新启用 {name}？", confirm_grant: "确定将 {name} 设为管理员？",
      confirm_revoke_admin: "确定取消 {name} 的管理员权限？",
      confirm_revoke: "确定撤销 {name} 的这个会话？其令牌将立即失效。",
      confirm_revoke_all: "确定撤销 {name} 的全部 {count} 个会话？",
      done_disable: "已停用 {name}。", done_enable: "已启用 {name}。", done_grant: "{name} 现在是管理员。",
      done_revoke_admin: "已取消 {name} 的管理员权限。", done_revoke: "会话已撤销。",
      done_revoke_all: "全部会话已撤销。", last_admin: "不能取消最后一位管理员的权限。",
      gender: "性别", gender_0: "未知", gender_1: "男", gender_2: "女", language: "语言", city: "城市",
      province: "省份", country: "国家", avatar_url: "头像", phone_number: "手机号", email: "邮箱",
      date_of_birth: "出生日期", description: "简介", id: "ID",
      action_user_disable: "停用用户", action_user_enable: "启用用户",
      action_user_grant_admin: "设为管理员", action_user_revoke_admin: "取消管理员",
      action_session_revoke: "撤销会话", action_session_revoke_all: "撤销全部会话"
    }
  };

  // The language: Chinese when the browser prefers it, else English; the
  // switch in the header changes it for this tab.
  var lang = (function () {
    var prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
    for (var i = 0; i < prefs.length; i++) {
      var p = String(prefs[i]).toLowerCase();
      if (p.indexOf("zh") === 0) { return "zh"; }
      if (p.indexOf("en") === 0) { return "en"; }
    }
    return "en";
  })();

  function t(key, args) {
    var s = TEXT[lang][key];
    if (s === undefined) { s = TEXT.en[key]; }
    if (s === undefined) { return key; }
    return s.replace(/\{(\w+)\}/g, function (m, name) { return args && args[name] !== undefined ? String(args[name]) : m; });
  }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("brand");
    document.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = t(n.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (n) { n.placeholder = t(n.dataset.i18nPlaceholder); });
    var other = lang === "zh" ? "en" : "zh";
    $("lang").textContent = other === "zh" ? "中文" : "English";
    $("lang").lang = other === "zh" ? "zh-CN" : "en";
  }

  // ---- DOM helpers -----------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k === "text") { n.textContent = v; } else if (k === "class") { n.className = v; } else { n.setAttribute(k, v === true ? "" : v); }
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) { n.appendChild(typeof c === "string" ? document.createTextNode(c) : c); }
    });
    return n;
  }

  function clear(n) { while (n.firstChild) { n.removeChild(n.firstChild); } return n; }
  function show(n, on) { (typeof n === "string" ? $(n) : n).hidden = !on; }

  var noticeTimer = 0;
  function notice(text, kind) {
    var n = $("notice");
    clearTimeout(noticeTimer);
    n.textContent = text;
    n.dataset.kind = kind || "ok";
    show(n, !!text);
    if (text && kind !== "error") { noticeTimer = setTimeout(function () { show(n, false); }, 6000); }
  }

  function fmtTime(v) {
    if (!v) { return "—"; }
    var d = new Date(v);
    if (isNaN(d.getTime())) { return String(v); }
    return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium", timeStyle: "short" }).format(d);
  }

  function fmtNum(n) { return typeof n === "number" ? new Intl.NumberFormat(lang === "zh" ? "zh-CN" : "en").format(n) : "–"; }

  // placeholderAvatar is the first letter on green, for users without an
  // avatar or whose avatar does not load.
  function placeholderAvatar(name) {
    var ch = (String(name || "?").trim().charAt(0) || "?").toUpperCase();
    ch = ch.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#07c160"/>' +
      '<text x="32" y="43" text-anchor="middle" font-family="sans-serif" font-size="30" fill="#fff">' + ch + "</text></svg>";
    return "data:image/svg+xml," + encodeURIComponent(svg);
  }

  // setAvatar shows u's avatar: WeChat's CDN serves https; anything else
  // the CSP would refuse, so it gets the placeholder at once.
  function setAvatar(img, u) {
    var fallback = placeholderAvatar(u.nickname || u.username);
    img.onerror = function () { img.onerror = null; img.src = fallback; };
    img.src = /^https:\/\//i.test(u.avatar_url || "") ? u.avatar_url : fallback;
  }

  function avatar(u) {
    var img = el("img", { class: "avatar", alt: "", referrerpolicy: "no-referrer", loading: "lazy" });
    setAvatar(img, u);
    return img;
  }

  function badge(text, kind) { return el("span", { class: "badge " + (kind || ""), text: text }); }
  function kindLabel(k) { var s = t("kind_" + k); return s === "kind_" + k ? k : s; }
  function displayName(u) { return u.nickname || u.username || u.id; }

  // uniqueKinds lists the identity kinds of u, each once.
  function uniqueKinds(u) {
    var seen = {}, out = [];
    (u.identities || []).forEach(function (i) { if (!seen[i.kind]) { seen[i.kind] = true; out.push(i.kind); } });
    (u.identity_kinds || []).forEach(function (k) { if (!seen[k]) { seen[k] = true; out.push(k); } });
    return out;
  }

  // ---- Tokens ----------------------------------------------------------------

  // auth is the signed-in admin: tokens and when the access token expires
  // (by this browser's clock, from expires_in, so no clock skew matters).
  var auth = null;
  var refreshing = null; // the refresh in flight: every caller shares it
  var refreshTimer = 0;
  var epoch = 0; // bumps when a session starts or ends: late answers are dropped

  function ApiError(status, code, detail) {
    this.status = status;
    this.code = code || "";
    this.detail = detail || "";
    this.message = status + " " + this.code + (detail ? ": " + detail : "");
  }
  ApiError.prototype = Object.create(Error.prototype);

  function errorText(e) {
    if (!(e instanceof ApiError)) { return t("network_error"); }
    if (e.code && TEXT.en[e.code]) { return t(e.code); }
    return t("error") + ": " + e.message;
  }

  function readBody(res) {
    return res.text().then(function (s) {
      if (!s) { return null; }
      try { return JSON.parse(s); } catch (e) { return null; }
    });
  }

  function setTokens(b) {
    // admin: the server has answered an admin route for this session.
    var user = b.user || (auth && auth.user) || {}, admin = !!(auth && auth.admin);
    auth = { access: b.access_token, refresh: b.refresh_token, user: user, admin: admin, expiresAt: Date.now() + b.expires_in * 1000 };
    // Refresh before expiry: a minute early, or a quarter of a short lifetime.
    var ms = b.expires_in * 1000, lead = Math.min(60000, ms / 4);
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () { refresh().catch(function () {}); }, Math.max(500, ms - lead));
  }

  // refresh spends the refresh token once. Refresh tokens are single-use and
  // reuse revokes the whole family, so there is never a second refresh of
  // one token: callers share the one in flight, and after a failure the
  // token is not tried again (the access token is used until it expires).
  function refresh() {
    if (refreshing) { return refreshing; }
    if (!auth || !auth.refresh) {
      endSession("session_ended");
      return Promise.reject(new ApiError(401, "session_ended"));
    }
    var token = auth.refresh, mine = epoch;
    auth.refresh = null;
    refreshing = fetch("api/v1/auth/refresh", {
      method: "POST", cache: "no-store", credentials: "omit",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: token })
    }).then(function (res) {
      return readBody(res).then(function (b) {
        if (mine !== epoch) { throw new ApiError(401, "session_ended"); }
        if (res.status === 200 && b && b.access_token) { setTokens(b); return; }
        var e = new ApiError(res.status, b && b.code, b && b.detail);
        // 401/403: the session is over (revoked, reused, user disabled).
        if (res.status === 401 || res.status === 403) { endSession("session_ended"); }
        throw e;
      });
    }).finally(function () { refreshing = null; });
    return refreshing;
  }

  // call is one API request with the admin's access token. A token that
  // expired meanwhile (a sleeping laptop) is refreshed once, then the call
  // is made again.
  function call(method, path, body, retried) {
    var wait = refreshing ? refreshing.catch(function () {}) : Promise.resolve();
    return wait.then(function () {
      if (!auth) { throw new ApiError(401, "session_ended"); }
      var token = auth.access, mine = epoch;
      var init = { method: method, cache: "no-store", credentials: "omit", headers: { "Authorization": "Bearer " + token } };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetch(path, init).then(function (res) {
        return readBody(res).then(function (b) {
          if (mine !== epoch) { throw new ApiError(401, "session_ended"); }
          if (res.ok) { return b; }
          var code = b && b.code;
          if (res.status === 401 && code === "token_expired" && !retried) {
            // Another call may have refreshed already: then just use the new token.
            var fresh = auth && auth.access !== token ? Promise.resolve() : refresh();
            return fresh.then(function () { return call(method, path, body, true); });
          }
          if (res.status === 401) { endSession("session_ended"); }
          // The admin was disabled or lost the rights meanwhile.
          if (res.status === 403 && auth && auth.admin && (code === "forbidden" || code === "user_disabled")) {
            dropSession(code === "forbidden" ? "not_admin_now" : "user_disabled");
          }
          throw new ApiError(res.status, code, b && b.detail);
        });
      });
    });
  }

  function q(params) {
    var s = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k] !== "" && params[k] !== undefined && params[k] !== null) { s.set(k, params[k]); } });
    var out = s.toString();
    return out ? "?" + out : "";
  }

  // ---- Session start and end -------------------------------------------------

  // signedIn takes the tokens of a login. Whether the account is an admin is
  // the server's to say: the stats call answers 403 forbidden otherwise, and
  // then the tokens are revoked at once.
  function signedIn(b) {
    epoch++;
    stopQR();
    auth = null;
    setTokens(b);
    var mine = epoch;
    return call("GET", "api/v1/admin/stats").then(function (stats) {
      if (mine !== epoch) { return; }
      auth.admin = true;
      $("me").textContent = displayName(auth.user);
      show("me", true);
      show("signout", true);
      show("nav", true);
      $("signin-password").value = "";
      signinError("");
      lastStats = stats;
      route();
    }, function (e) {
      if (mine !== epoch) { return; }
      var code = e instanceof ApiError && e.status === 403 ? "not_admin" : "";
      $("signin-password").value = "";
      resetQR();
      revokeTokens().then(function () {
        signinError(code ? t("not_admin") : errorText(e), code || e.code);
      });
    });
  }

  // revokeTokens logs the tokens out (POST /api/v1/auth/logout) and forgets
  // them. A refresh in flight finishes first, so the pair revoked is the
  // live one; an access token about to expire is refreshed first, because
  // logout wants a valid one.
  function revokeTokens() {
    var wait = refreshing ? refreshing.catch(function () {}) : Promise.resolve();
    return wait.then(function () {
      if (auth && auth.refresh && auth.expiresAt - Date.now() < 5000) { return refresh().catch(function () {}); }
    }).then(function () {
      var a = auth;
      forget();
      if (!a) { return; }
      return fetch("api/v1/auth/logout", {
        method: "POST", cache: "no-store", credentials: "omit",
        headers: { "Authorization": "Bearer " + a.access, "Content-Type": "application/json" },
        body: JSON.stringify(a.refresh ? { refresh_token: a.refresh } : {})
      }).then(function () {}, function () {});
    });
  }

  function forget() {
    epoch++;
    clearTimeout(refreshTimer);
    auth = null;
    lastStats = null;
    users = {};
    show("nav", false);
    show("me", false);
    show("signout", false);
  }

  // endSession: the server no longer takes the tokens (revoked, expired,
  // the admin disabled): back to the sign-in form with a word why.
  function endSession(key) {
    if (!auth) { return; }
    forget();
    showView("signin");
    signinError(t(key), key);
  }

  // dropSession revokes the tokens, then shows why on the sign-in form.
  function dropSession(key) {
    revokeTokens().then(function () {
      showView("signin");
      signinError(t(key), key);
    });
  }

  function signinError(text, code) {
    var n = $("signin-error");
    n.textContent = text || "";
    n.dataset.code = code || "";
    show(n, !!text);
  }

  // ---- Sign in: password -----------------------------------------------------

  $("password-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var btn = $("signin-submit");
    btn.disabled = true;
    signinError("");
    fetch("api/v1/auth/password/login", {
      method: "POST", cache: "no-store", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("signin-username").value, password: $("signin-password").value })
    }).then(function (res) {
      return readBody(res).then(function (b) {
        if (res.status === 200 && b && b.access_token) { return signedIn(b); }
        var e = new ApiError(res.status, b && b.code, b && b.detail);
        signinError(errorText(e), e.code);
      });
    }, function () { signinError(t("network_error"), "network_error"); })
      .then(function () { btn.disabled = false; });
  });

  // ---- Sign in: WeChat QR (the website login of docs/api.md) -----------------

  var qrGen = 0;

  function stopQR() {
    qrGen++;
    $("qr-frame").removeAttribute("src");
    show("qr-frame", false);
  }

  // resetQR leaves the WeChat pane with its button, ready for a new code.
  function resetQR() {
    stopQR();
    qrStatus("");
    $("qr-start").textContent = t("qr_show");
    show("qr-start", true);
  }

  function qrStatus(key, state) {
    var n = $("qr-status");
    n.textContent = key ? t(key) : "";
    n.dataset.status = state || "";
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function startQR() {
    stopQR();
    var gen = qrGen;
    signinError("");
    show("qr-start", false);
    qrStatus("qr_creating", "creating");
    // The answer sets the ticket's cookie: WeChat's redirect to the
    // callback must come from this browser (issue #9).
    fetch("api/v1/auth/web/qr", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: "{}"
    }).then(function (res) {
      return readBody(res).then(function (b) {
        if (res.status !== 201 || !b) { throw new ApiError(res.status, b && b.code, b && b.detail); }
        return b;
      });
    }).then(function (tk) {
      if (gen !== qrGen) { return; }
      // As WeChat's wxLogin.js does: its QR page in a frame, and with
      // self_redirect the callback page stays in the frame.
      $("qr-frame").src = tk.qrconnect_url.split("#")[0] + "&login_type=jssdk&self_redirect=true";
      show("qr-frame", true);
      qrStatus("qr_scan", "pending");
      pollQR(gen, tk);
    }).catch(function (e) {
      if (gen !== qrGen) { return; }
      qrFailed(errorText(e), "error");
    });
  }

  function qrFailed(text, state) {
    stopQR();
    $("qr-status").textContent = text;
    $("qr-status").dataset.status = state;
    $("qr-start").textContent = t("qr_again");
    show("qr-start", true);
  }

  function pollQR(gen, tk) {
    var url = "api/v1/auth/web/qr/" + encodeURIComponent(tk.ticket) + "?wait=25s";
    var failures = 0;
    var loop = function () {
      if (gen !== qrGen) { return; }
      var began = Date.now();
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "X-Poll-Token": tk.poll_token } }).then(function (res) {
        return readBody(res).then(function (b) {
          if (gen !== qrGen) { return; }
          if (res.status === 200 && b) {
            failures = 0;
            if (b.status === "confirmed") { return signedIn(b); }
            if (b.status === "denied") { return qrFailed(t("qr_denied"), "denied"); }
            return sleep(Math.max(0, 1000 - (Date.now() - began))).then(loop);
          }
          if (res.status === 404 || res.status === 410) { return qrFailed(t("qr_expired"), "expired"); }
          if (res.status === 403 && b && b.code === "wechat_not_bound") { return qrFailed(t("qr_not_bound"), "not_bound"); }
          if (res.status === 429) {
            return sleep(Math.max(1, parseInt(res.headers.get("Retry-After") || "1", 10)) * 1000).then(loop);
          }
          if (res.status >= 500 && ++failures <= 5) { return sleep(1000 * failures).then(loop); }
          qrFailed(errorText(new ApiError(res.status, b && b.code, b && b.detail)), "error");
        });
      }, function () {
        if (gen !== qrGen) { return; }
        if (++failures <= 5) { return sleep(1000 * failures).then(loop); }
        qrFailed(t("network_error"), "error");
      });
    };
    loop();
  }

  function signinTab(which) {
    var pw = which === "password";
    $("tab-password").classList.toggle("active", pw);
    $("tab-wechat").classList.toggle("active", !pw);
    show("password-form", pw);
    show("wechat-pane", !pw);
    signinError("");
    if (pw) { resetQR(); }
  }

  $("tab-password").addEventListener("click", function () { signinTab("password"); });
  $("tab-wechat").addEventListener("click", function () { signinTab("wechat"); });
  $("qr-start").addEventListener("click", startQR);

  $("signout").addEventListener("click", function () {
    resetQR();
    revokeTokens().then(function () {
      showView("signin");
      notice(t("signed_out"));
    });
  });

  // ---- Confirmation ----------------------------------------------------------

  // confirmThen asks in a modal dialog and runs action only on Confirm.
  function confirmThen(text, action) {
    var dlg = $("confirm");
    $("confirm-text").textContent = text;
    var done = function (ok) {
      $("confirm-ok").onclick = null;
      $("confirm-cancel").onclick = null;
      dlg.close();
      if (ok) { action(); }
    };
    $("confirm-ok").onclick = function () { done(true); };
    $("confirm-cancel").onclick = function () { done(false); };
    dlg.showModal();
  }

  // ---- Views -----------------------------------------------------------------

  var VIEWS = ["signin", "dashboard", "users", "user", "audit"];
  var viewGen = 0; // bumps on every render: answers for an older view are dropped
  var lastStats = null;

  function showView(name) {
    VIEWS.forEach(function (v) { show("view-" + v, v === name); });
    document.querySelectorAll("#nav a").forEach(function (a) {
      a.classList.toggle("active", a.dataset.view === name || (name === "user" && a.dataset.view === "users"));
    });
    document.body.dataset.view = name;
  }

  function parseHash() {
    var h = location.hash.replace(/^#\/?/, "");
    var i = h.indexOf("?");
    var path = i < 0 ? h : h.slice(0, i);
    return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(i < 0 ? "" : h.slice(i + 1)) };
  }

  function go(hash) {
    if (location.hash === hash) { route(); } else { location.hash = hash; }
  }

  function route() {
    if (!auth) { showView("signin"); return; }
    var r = parseHash(), gen = ++viewGen;
    if (r.parts[0] === "users" && r.parts[1]) { return renderUser(gen, r.parts[1]); }
    if (r.parts[0] === "users") { return renderUsers(gen, r.params); }
    if (r.parts[0] === "audit") { return renderAudit(gen, r.params); }
    return renderDashboard(gen);
  }

  function failed(gen) {
    return function (e) { if (gen === viewGen && auth) { notice(errorText(e), "error"); } };
  }

  // ---- Dashboard -------------------------------------------------------------

  var LOGIN_KINDS = ["miniprogram", "web", "officialaccount", "app", "password"];

  function renderDashboard(gen) {
    showView("dashboard");
    var stats = lastStats;
    lastStats = null; // shown once as it came with the sign-in; fetched afresh after
    (stats ? Promise.resolve(stats) : call("GET", "api/v1/admin/stats")).then(function (s) {
      if (gen !== viewGen) { return; }
      ["users_total", "users_new_24h", "users_new_7d", "users_disabled"].forEach(function (k) {
        $("stat-" + k).textContent = fmtNum(s[k]);
      });
      var logins = s.logins_24h || {}, kinds = LOGIN_KINDS.slice(), max = 0;
      Object.keys(logins).forEach(function (k) { if (kinds.indexOf(k) < 0) { kinds.push(k); } });
      kinds.forEach(function (k) { max = Math.max(max, logins[k] || 0); });
      var body = clear($("logins"));
      kinds.forEach(function (k) {
        var n = logins[k] || 0;
        var bar = el("div", { class: "bar" });
        // CSSOM, not a style attribute: the CSP forbids inline styles.
        bar.style.width = (n ? Math.max(1, Math.round(100 * n / max)) : 0) + "%";
        body.appendChild(el("tr", { "data-kind": k }, [
          el("th", { text: kindLabel(k) }),
          el("td", { class: "num", text: fmtNum(n) }),
          el("td", { class: "bar-cell" }, [bar])
        ]));
      });
    }, failed(gen));
  }

  // ---- Users -----------------------------------------------------------------

  var PAGE_SIZE = 20;

  // pager shows where page is; a capped total (the server stops counting)
  // shows as "10,000+".
  function pager(prefix, page, total, capped, size, onPage) {
    var pages = Math.max(1, Math.ceil(total / size));
    $(prefix + "-page").textContent = t("page_of", { page: page, pages: fmtNum(pages) + (capped ? "+" : ""), total: fmtNum(total) + (capped ? "+" : "") });
    $(prefix + "-prev").disabled = page <= 1;
    $(prefix + "-next").disabled = page >= pages;
    $(prefix + "-prev").onclick = function () { onPage(page - 1); };
    $(prefix + "-next").onclick = function () { onPage(page + 1); };
  }

  function usersHash(qs, sort, page) {
    return "#/users" + q({ q: qs, sort: sort === "-created_at" ? "" : sort, page: page > 1 ? page : "" });
  }

  function renderUsers(gen, params) {
    showView("users");
    var qs = params.get("q") || "", sort = params.get("sort") || "-created_at";
    var page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    $("search-q").value = qs;
    $("search-sort").value = sort;
    call("GET", "api/v1/admin/users" + q({ q: qs, page: page, page_size: PAGE_SIZE, sort: sort })).then(function (res) {
      if (gen !== viewGen) { return; }
      var body = clear($("users"));
      (res.items || []).forEach(function (u) {
        var link = el("a", { href: "#/users/" + encodeURIComponent(u.id), class: "user-link", text: displayName(u) });
        var kinds = el("td", { class: "kinds" }), last = el("td", { class: "time last-login" });
        body.appendChild(el("tr", { "data-id": u.id, class: "clickable" }, [
          el("td", null, [avatar(u)]),
          el("td", null, [link]),
          el("td", { class: "mono", text: u.username }),
          kinds,
          el("td", { class: "time", text: fmtTime(u.created_at) }),
          last,
          el("td", null, stateBadges(u))
        ]));
        var fill = function (full) {
          uniqueKinds(full).forEach(function (k) { kinds.appendChild(badge(kindLabel(k), "kind")); });
          last.textContent = lastLogin(full);
        };
        // The search answers users without identities: their kinds come
        // from each user's record.
        if (u.identities || u.identity_kinds) { fill(u); } else {
          fetchUser(u.id).then(function (full) { if (gen === viewGen) { fill(full); } }, function () { fill(u); });
        }
      });
      body.dataset.hash = location.hash; // what the rows answer: lets a test (or a person) tell a stale list
      show("users-empty", !(res.items || []).length);
      pager("users", page, res.total || 0, !!res.total_capped, PAGE_SIZE, function (p) { go(usersHash(qs, sort, p)); });
    }, failed(gen));
  }

  // lastLogin is when u last logged in, "never", or "—" when the API does
  // not say.
  function lastLogin(u) {
    if (u.last_login_at) { return fmtTime(u.last_login_at); }
    return "last_login_at" in u ? t("never") : "—";
  }

  function stateBadges(u) {
    var out = [u.disabled_at ? badge(t("disabled"), "off") : badge(t("active"), "on")];
    if (u.is_admin) { out.push(badge(t("admin"), "admin")); }
    return out;
  }

  $("users").addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr[data-id]");
    if (tr && !ev.target.closest("a")) { go("#/users/" + encodeURIComponent(tr.dataset.id)); }
  });

  $("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    go(usersHash($("search-q").value.trim(), $("search-sort").value, 1));
  });
  $("search-sort").addEventListener("change", function () {
    go(usersHash($("search-q").value.trim(), $("search-sort").value, 1));
  });

  // ---- One user --------------------------------------------------------------

  // Fields that come from WeChat (the seeds' readonly_fields).
  var WECHAT_FIELDS = { nickname: true, avatar_url: true, gender: true, language: true, city: true, province: true, country: true };
  var PROFILE_FIELDS = ["id", "username", "nickname", "avatar_url", "gender", "language", "city", "province", "country",
    "phone_number", "email", "date_of_birth", "description", "created_at", "last_login_at"];

  function renderUser(gen, id) {
    showView("user");
    var path = "api/v1/admin/users/" + encodeURIComponent(id);
    call("GET", path).then(function (u) {
      if (gen !== viewGen) { return; }
      var name = displayName(u);
      setAvatar($("user-avatar"), u);
      $("user-nickname").textContent = u.nickname || u.username;
      $("user-username").textContent = u.username;
      $("user-id").textContent = u.id;
      var badges = clear($("user-badges"));
      stateBadges(u).forEach(function (b) { badges.appendChild(b); });
      $("view-user").dataset.state = u.disabled_at ? "disabled" : "active";
      $("view-user").dataset.admin = u.is_admin ? "true" : "false";
      show("user-disable", !u.disabled_at);
      show("user-enable", !!u.disabled_at);
      show("user-grant", !u.is_admin);
      show("user-revoke-admin", !!u.is_admin);

      var dl = clear($("user-profile"));
      PROFILE_FIELDS.forEach(function (f) {
        var v = u[f];
        if (f === "gender") { v = t("gender_" + (v || 0)); }
        if (f === "created_at") { v = fmtTime(v); }
        if (f === "last_login_at") { v = lastLogin(u); }
        var label = f === "created_at" ? t("created") : f === "last_login_at" ? t("last_login") : t(f);
        dl.appendChild(el("dt", { "data-field": f }, [label, WECHAT_FIELDS[f] ? badge(t("wechat"), "wechat") : null]));
        dl.appendChild(el("dd", { "data-field": f, class: f === "id" || f === "avatar_url" ? "mono" : "", text: v === undefined || v === "" ? "—" : String(v) }));
      });

      var ids = clear($("user-identities"));
      (u.identities || []).forEach(function (i) {
        ids.appendChild(el("tr", { "data-id": i.id }, [
          el("td", null, [badge(kindLabel(i.kind), "kind")]),
          el("td", { class: "mono", text: i.appid || "—" }),
          el("td", { class: "mono", text: i.openid || "—" }),
          el("td", { class: "mono", text: i.unionid || "—" }),
          el("td", { class: "time", text: fmtTime(i.created_at) })
        ]));
      });

      $("user-disable").onclick = function () { userAction(u, "disable", "POST", path + "/disable"); };
      $("user-enable").onclick = function () { userAction(u, "enable", "POST", path + "/enable"); };
      $("user-grant").onclick = function () { userAction(u, "grant", "POST", path + "/admin"); };
      $("user-revoke-admin").onclick = function () { userAction(u, "revoke_admin", "DELETE", path + "/admin"); };
      renderSessions(gen, u, name);
      renderUserAudit(gen, u);
    }, failed(gen));
  }

  // userAction runs one admin action on u after a confirmation, then shows
  // the user afresh.
  function userAction(u, what, method, path) {
    var name = displayName(u);
    confirmThen(t("confirm_" + what, { name: name }), function () {
      call(method, path).then(function () {
        notice(t("done_" + what, { name: name }));
        route();
      }, function (e) { notice(errorText(e), "error"); });
    });
  }

  function renderSessions(gen, u, name) {
    var base = "api/v1/admin/users/" + encodeURIComponent(u.id) + "/sessions";
    call("GET", base).then(function (res) {
      if (gen !== viewGen) { return; }
      var items = res.items || [], body = clear($("user-sessions"));
      items.forEach(function (s) {
        var btn = el("button", { type: "button", class: "danger small revoke", "data-sid": s.id, text: t("revoke") });
        btn.onclick = function () {
          confirmThen(t("confirm_revoke", { name: name }), function () {
            call("DELETE", base + "/" + encodeURIComponent(s.id)).then(function () {
              notice(t("done_revoke"));
              route();
            }, function (e) { notice(errorText(e), "error"); });
          });
        };
        body.appendChild(el("tr", { "data-sid": s.id }, [
          el("td", null, [badge(kindLabel(s.kind), "kind")]),
          el("td", { class: "mono", text: s.client_id || "—" }),
          el("td", { class: "time", text: fmtTime(s.created_at) }),
          el("td", { class: "time", text: fmtTime(s.last_used_at) }),
          el("td", { class: "time", text: fmtTime(s.expires_at) }),
          el("td", null, [btn])
        ]));
      });
      show("sessions-empty", !items.length);
      $("sessions-revoke-all").disabled = !items.length;
      $("sessions-revoke-all").onclick = function () {
        confirmThen(t("confirm_revoke_all", { name: name, count: items.length }), function () {
          call("DELETE", base).then(function () {
            notice(t("done_revoke_all"));
            route();
          }, function (e) { notice(errorText(e), "error"); });
        });
      };
    }, failed(gen));
  }

  function renderUserAudit(gen, u) {
    call("GET", "api/v1/admin/audit" + q({ target: u.id, page_size: 10 })).then(function (res) {
      if (gen !== viewGen) { return; }
      var body = clear($("user-audit"));
      (res.items || []).forEach(function (a) {
        body.appendChild(el("tr", { "data-action": a.action }, [
          el("td", { class: "time", text: fmtTime(a.at) }),
          el("td", null, [userRef(a.actor_id, t("cli"))]),
          el("td", { text: actionLabel(a.action) }),
          el("td", { class: "small", text: detailText(a.detail) })
        ]));
      });
      show("user-audit-empty", !(res.items || []).length);
    }, failed(gen));
  }

  // ---- Audit log -------------------------------------------------------------

  var AUDIT_PAGE_SIZE = 50;
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  function actionLabel(a) {
    var key = "action_" + String(a).replace(/[^a-z0-9]+/gi, "_");
    var s = t(key);
    return s === key ? a : s + " (" + a + ")";
  }

  function detailText(d) {
    if (d === null || d === undefined || d === "") { return ""; }
    if (typeof d !== "object") { return String(d); }
    return Object.keys(d).map(function (k) {
      var v = d[k];
      return k + ": " + (typeof v === "object" ? JSON.stringify(v) : String(v));
    }).join(", ");
  }

  // users caches the records fetched for the list and the audit tables
  // (names and kinds change seldom); a user's own page always asks afresh.
  var users = {};

  function fetchUser(id) {
    if (!users[id]) {
      users[id] = call("GET", "api/v1/admin/users/" + encodeURIComponent(id));
      users[id].catch(function () { delete users[id]; });
    }
    return users[id];
  }

  // userRef is a link to a user, named once its record is fetched. An
  // audit row without an actor is the identity command line.
  function userRef(id, none) {
    if (!id) { return document.createTextNode(none); }
    var a = el("a", { href: "#/users/" + encodeURIComponent(id), class: "mono", "data-user-id": id, text: id.slice(0, 8) });
    fetchUser(id).then(function (u) { a.textContent = displayName(u); a.classList.remove("mono"); a.title = id; }, function () {});
    return a;
  }

  // resolveUser turns a filter into a user id: an id as it is, a username
  // through the search.
  function resolveUser(v) {
    if (!v || UUID.test(v)) { return Promise.resolve(v); }
    return call("GET", "api/v1/admin/users" + q({ q: v, page_size: 100 })).then(function (res) {
      var hit = (res.items || []).filter(function (u) { return u.username === v; })[0];
      if (!hit) { throw new Error(t("no_such_user", { name: v })); }
      return hit.id;
    });
  }

  function auditHash(actor, target, action, page) {
    return "#/audit" + q({ actor: actor, target: target, action: action, page: page > 1 ? page : "" });
  }

  function renderAudit(gen, params) {
    showView("audit");
    var actor = params.get("actor") || "", target = params.get("target") || "", action = params.get("action") || "";
    var page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    $("audit-actor").value = actor;
    $("audit-target").value = target;
    $("audit-action").value = action;
    call("GET", "api/v1/admin/audit" + q({ actor: actor, target: target, action: action, page: page, page_size: AUDIT_PAGE_SIZE })).then(function (res) {
      if (gen !== viewGen) { return; }
      var body = clear($("audit")), actions = $("audit-actions");
      (res.items || []).forEach(function (a) {
        body.appendChild(el("tr", { "data-action": a.action, "data-target": a.target_id || "" }, [
          el("td", { class: "time", text: fmtTime(a.at) }),
          el("td", null, [userRef(a.actor_id, t("cli"))]),
          el("td", { text: actionLabel(a.action) }),
          el("td", null, [userRef(a.target_id, "—")]),
          el("td", { class: "small", text: detailText(a.detail) })
        ]));
        if (!actions.querySelector('option[value="' + CSS.escape(a.action) + '"]')) { actions.appendChild(el("option", { value: a.action })); }
      });
      body.dataset.hash = location.hash;
      show("audit-empty", !(res.items || []).length);
      pager("audit", page, res.total || 0, !!res.total_capped, AUDIT_PAGE_SIZE, function (p) { go(auditHash(actor, target, action, p)); });
    }, failed(gen));
  }

  $("audit-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var action = $("audit-action").value.trim();
    Promise.all([resolveUser($("audit-actor").value.trim()), resolveUser($("audit-target").value.trim())]).then(function (ids) {
      go(auditHash(ids[0], ids[1], action, 1));
    }, function (e) { notice(e instanceof ApiError ? errorText(e) : e.message, "error"); });
  });
  $("audit-clear").addEventListener("click", function () { go("#/audit"); });

  // ---- Start -----------------------------------------------------------------

  $("lang").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    applyLang();
    if (auth) { route(); }
  });
  window.addEventListener("hashchange", route);
  applyLang();
  showView("signin");
})();
