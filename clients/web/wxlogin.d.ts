// Types of @wxlogin/web (wxlogin.js).

/** A user as the API answers it. */
export interface User {
  id: string
  username?: string
  nickname?: string
  avatar_url?: string
  gender?: 0 | 1 | 2
  language?: string
  city?: string
  province?: string
  country?: string
  phone_number?: string
  email?: string
  created_at?: string
  [field: string]: unknown
}

/** The API's token answer. */
export interface TokenAnswer {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_token: string
  refresh_expires_in: number
  user: User
  is_new_user: boolean
}

/** What the session keeps (in storage, under storageKey). */
export interface StoredTokens {
  access_token: string
  refresh_token: string
  token_type: string
  /** ms since the epoch, as this browser's clock saw the answer; 0 if unknown */
  expires_at: number
  refresh_expires_at: number
  user: User | null
}

/** An RFC 9457 problem of the API. */
export interface Problem {
  type?: string
  title?: string
  status?: number
  detail?: string
  code?: string
  request_id?: string
  [field: string]: unknown
}

/** An error of the API (its problem `code`) or of this client (network_error, state_mismatch, logged_out, invalid_tokens, invalid_request). */
export class WxLoginError extends Error {
  constructor(message: string, options?: { status?: number; code?: string; problem?: Problem | null; cause?: unknown })
  readonly name: 'WxLoginError'
  /** the HTTP status; 0 when there was no answer */
  readonly status: number
  readonly code: string
  readonly problem: Problem | null
  readonly requestID: string
}

/** The part of the Web Storage API the client uses. */
export interface StorageLike {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

/**
 * Where the refresh lock reads and writes the session: one record per key,
 * and a write, once its promise resolves, is seen by every later get in
 * every tab (localStorage is not: a tab's copy can lag). The default
 * (with localStorage) is IndexedDB.
 */
export interface SharedStore {
  /** the record; null once logged out; undefined when there is none */
  get(key: string): Promise<StoredTokens | null | undefined>
  /** null: logged out */
  set(key: string, value: StoredTokens | null): Promise<void>
  delete(key: string): Promise<void>
}

/** The part of the Web Locks API (navigator.locks) the client uses. */
export interface LocksLike {
  request<T>(name: string, callback: (lock: unknown) => Promise<T> | T): Promise<T>
}

export interface ClientOptions {
  /** the gateway, e.g. "https://login.example.com/"; default: this page's origin */
  baseURL?: string
  /** more origins session.fetch sends the Bearer to, besides the gateway's and this page's */
  bearerOrigins?: string[]
  /** an app name of the gateway (WXLOGIN_APPS_FILE) for the QR codes and the in-WeChat login */
  app?: string
  /** where the session's tokens live; default localStorage (shared by the site's tabs) */
  storage?: StorageLike
  /**
   * where the cross-tab refresh reads the tokens written by other tabs;
   * default IndexedDB when storage is localStorage, else none (storage
   * itself); null: none
   */
  sharedStore?: SharedStore | null
  /** the storage key; the cross-tab lock is named storageKey + "-refresh". Default "wxlogin" */
  storageKey?: string
  /** default navigator.locks; null: the storage lease (best effort) */
  locks?: LocksLike | null
  /** where the in-WeChat login keeps its state; default sessionStorage */
  sessionStorage?: StorageLike
  /** default globalThis.fetch */
  fetch?: typeof fetch
  /** default window.location */
  location?: { href: string; origin: string; assign(url: string): void }
  /** default window.history */
  history?: { state: unknown; replaceState(state: unknown, title: string, url: string): void }
  /** where the storage event comes from; default window; null: none */
  window?: { addEventListener(type: 'storage', fn: (e: { key: string | null; storageArea?: unknown }) => void): void } | null
  /** ms between two QR polls at the least, and the unit of their backoff; default 1000 */
  pollInterval?: number
}

export interface LogoutDetail {
  /** "logout", "other_tab", or the code of the refresh that ended the session */
  reason: string
}

export interface SessionEvents {
  login: StoredTokens
  refresh: StoredTokens
  logout: LogoutDetail
}

/** The login session of this browser: tokens, and fetch with the refresh rules. */
export interface Session extends EventTarget {
  readonly tokens: StoredTokens | null
  readonly user: User | null
  /** "" when logged out */
  readonly accessToken: string
  readonly loggedIn: boolean
  on<K extends keyof SessionEvents>(type: K, listener: (detail: SessionEvents[K]) => void): () => void
  /** keeps the tokens of a login */
  set(answer: TokenAnswer): void
  /**
   * fetch with the Bearer; on 401 token_expired one refresh shared by every
   * call in flight and every tab, then the call once more. Rejects with the
   * refresh's WxLoginError when it fails (refresh_token_reused, token_revoked,
   * token_invalid, token_expired and user_disabled also log out; a 503 does not).
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>
  refresh(): Promise<void>
  /** GET /api/v1/me */
  me(): Promise<User & { identities: Array<{ id: string; kind: string; appid: string; created_at: string }> }>
  /** ends the session on the server and in every tab */
  logout(): Promise<void>
}

/** The answer of POST /api/v1/auth/web/qr. */
export interface WebQR {
  ticket: string
  poll_token: string
  expires_in: number
  qrconnect_url: string
  wxlogin: { appid: string; scope: 'snsapi_login'; redirect_uri: string; state: string }
}

/** The answer of POST /api/v1/auth/oa/qr. */
export interface FollowQR {
  ticket: string
  poll_token: string
  expires_in: number
  qr_url: string
  qr_content: string
}

export type Confirmed = { status: 'confirmed'; user: User | null; is_new_user: boolean; tokens: TokenAnswer }
export type NotBound = { status: 'not_bound'; bind_token: string; nickname: string; avatar_url: string }
export type Denied = { status: 'denied'; reason: string }
export type Expired = { status: 'expired'; code: string }
export type QRResult = Confirmed | NotBound | Denied | Expired
export type LoginResult = Confirmed | NotBound

export interface QRLoginOptions<Q> {
  /** shows each code: the first, and a new one after each expiry */
  onCode?: (qr: Q, restart: number) => void
  signal?: AbortSignal
  /** how many new codes after expiries; default 5 */
  restarts?: number
}

export interface Client {
  readonly session: Session
  /** the website QR login: logs the session in when confirmed */
  webLogin(options?: QRLoginOptions<WebQR>): Promise<QRResult>
  /** the official account's follow-to-log-in QR code: logs the session in when confirmed */
  followLogin(options?: QRLoginOptions<FollowQR>): Promise<QRResult>
  createQR(kind: 'web', options?: { signal?: AbortSignal }): Promise<WebQR>
  createQR(kind: 'follow', options?: { signal?: AbortSignal }): Promise<FollowQR>
  /** long-polls one ticket to its end; keeps no tokens */
  waitQR(kind: 'web' | 'follow', qr: { ticket: string; poll_token: string }, options?: { signal?: AbortSignal }): Promise<QRResult>
  /** sends this page to the official account's authorization; returns the URL */
  startInWeChatLogin(options?: { redirectURI?: string; scope?: 'snsapi_userinfo' | 'snsapi_base'; state?: string }): string
  /** on the page WeChat came back to: null without an answer in the URL */
  completeInWeChatLogin(options?: { url?: string }): Promise<LoginResult | Denied | null>
  register(fields: { username: string; password: string; bind_token?: string; code?: string }): Promise<LoginResult>
  bind(fields: { username: string; password: string; bind_token?: string; code?: string }): Promise<LoginResult>
  passwordLogin(fields: { username: string; password: string }): Promise<LoginResult>
}

export function createClient(options?: ClientOptions): Client

/** A StorageLike in memory: tokens that leave with the page. */
export function memoryStorage(): StorageLike

/** The src of WeChat's QR page as the WxLogin iframe shows it. */
export function wxLoginFrameURL(qr: Pick<WebQR, 'qrconnect_url'>, options?: { selfRedirect?: boolean; style?: 'black' | 'white'; href?: string }): string
