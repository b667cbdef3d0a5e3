// Types of @wxlogin/miniprogram (index.js). The HTTP contract behind them is
// docs/api.md of the wxlogin repository.

/** The part of the mini-program's `wx` the client uses. */
export interface WxAPI {
  login(options: {
    success(res: { code: string; errMsg?: string }): void
    fail(err: { errMsg: string }): void
  }): void
  request(options: {
    url: string
    method?: string
    data?: unknown
    header?: Record<string, string>
    success(res: { statusCode: number; data: unknown; header: Record<string, string>; errMsg?: string }): void
    fail(err: { errMsg: string }): void
  }): unknown
  getStorageSync(key: string): any
  setStorageSync(key: string, data: any): void
  removeStorageSync(key: string): void
}

export interface ClientOptions {
  /** The gateway, e.g. `https://api.example.com` (a domain on the mini-program's request allowlist). */
  baseURL: string
  /** The configured mini-program's name (`app` of the login call); default: the server's default one. */
  app?: string
  /** Defaults to the global `wx`. */
  wx?: WxAPI
  /** The wx storage key of the tokens; default `wxlogin_tokens`. */
  storageKey?: string
}

export interface Identity {
  id: string
  provider: string
  kind: string
  appid: string
  created_at: string
}

/** A user as the server answers it; empty members may be left out. */
export interface User {
  id: string
  username: string
  nickname: string
  avatar_url: string
  /** 0 unknown, 1 male, 2 female. */
  gender: number
  language: string
  city: string
  province: string
  country: string
  phone_number: string
  email: string
  created_at: string
  date_of_birth?: string
  description?: string
  is_admin?: boolean
  disabled_at?: string
  identities?: Identity[]
  [member: string]: unknown
}

export interface LoginResult {
  user: User
  /** True exactly once per person: their first login. */
  is_new_user: boolean
}

/**
 * What the fill-in components (or `wx.getUserInfo`) gave: an object with
 * `nickName`, `avatarUrl`, `gender`, `language`, `city`, `province`,
 * `country`, or the raw JSON string (`rawData`).
 */
export type UserInfo = Record<string, unknown> | string

export interface RequestOptions {
  /** A path under baseURL, e.g. `/api/v1/me`; an absolute URL is refused (the token goes to no other host). */
  url: string
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS'
  /** As wx.request takes it: the query of a GET, else the body (objects as JSON). */
  data?: string | Record<string, unknown> | ArrayBuffer
  /** Extra headers; Authorization is the client's. */
  header?: Record<string, string>
}

export interface Response<T = any> {
  statusCode: number
  data: T
  header: Record<string, string>
}

/** An RFC 9457 problem, as every wxlogin error is answered. */
export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  /** Stable: what to branch on. */
  code: string
  request_id: string
  [member: string]: unknown
}

/**
 * Every failure the client reports. `code` is the server's problem code
 * (`forbidden`, `token_revoked`, `service_unavailable`, `wechat_code_used`, …)
 * or one of the client's own.
 */
export class WxLoginError extends Error {
  readonly name: 'WxLoginError'
  readonly code:
    | 'network_error' // wx.request failed: no answer (tokens kept)
    | 'not_logged_in' // no tokens in storage
    | 'logged_out' // logout() was called while this was under way
    | 'wx_login_failed' // wx.login failed or gave no code
    | 'http_error' // an error answer that is not a problem (e.g. a proxy's page)
    | 'invalid_response' // a token answer without tokens
    | (string & {})
  /** The HTTP status; 0 when there was no answer. */
  readonly status: number
  /** The problem+json body, when the answer was one. */
  readonly problem: Problem | null
  /** The server's request id (problem `request_id` or `X-Request-ID`): quote it when reporting a failure. */
  readonly requestId: string
  /** The answer, when there was one. */
  readonly response?: Response
}

export interface Client {
  /**
   * wx.login, then the login call; the tokens go to wx storage. A code
   * WeChat calls used (`wechat_code_used`) is replaced by one more
   * wx.login. A login already under way is joined (its userInfo counts).
   */
  login(options?: { userInfo?: UserInfo }): Promise<LoginResult>
  /**
   * A call with the access token. On `401 token_expired` one refresh is
   * shared by every call in flight, then each call runs once more; when the
   * session is over (refresh answered `refresh_token_reused`,
   * `token_revoked`, `token_invalid` or `token_expired`) one login() replaces
   * it first. Rejects with a WxLoginError on any 4xx/5xx answer; a failed
   * refresh that may pass (503, network) keeps the tokens, while an access
   * token answered `token_revoked` or `token_invalid` is removed.
   */
  request<T = any>(options: RequestOptions): Promise<Response<T>>
  /** Ends the session on the server and removes the tokens (also when the server cannot be told; then it rejects). */
  logout(): Promise<void>
  /** Whether tokens are stored (they may still turn out to be expired or revoked). */
  isLoggedIn(): boolean
}

export function createClient(options: ClientOptions): Client
