// Checks a wxlogin access token the way the gateway does, with jose:
// EdDSA only, typ at+jwt, the issuer and audience, exp with 5 s of leeway,
// and the claims wxlogin relies on (sub, jti, iat). The keys come from the
// jwks_uri of the RFC 8414 metadata; jose caches them and re-fetches when a
// token names a kid it does not know (a rotated-in key).
//
//   node verify.mjs https://login.example.com <access token>
//
// prints the claims as JSON, or {"error": "token_invalid" | "token_expired"}
// and exits 1.
import { createRemoteJWKSet, jwtVerify, errors } from 'jose';

export async function verifier(baseURL, { audience = 'wxlogin' } = {}) {
  const res = await fetch(new URL('/.well-known/oauth-authorization-server', baseURL));
  if (!res.ok) throw new Error(`metadata: HTTP ${res.status}`);
  const { issuer, jwks_uri: jwksURI } = await res.json();
  const keys = createRemoteJWKSet(new URL(jwksURI));
  return async (token) => {
    const { payload } = await jwtVerify(token, keys, {
      issuer,
      audience,
      algorithms: ['EdDSA'],
      typ: 'at+jwt',
      clockTolerance: 5,
      requiredClaims: ['sub', 'jti', 'iat', 'exp'],
    });
    return payload;
  };
}

// errorCode maps a jose error to wxlogin's codes: expired only when the
// token is otherwise valid (jose checks the signature before the claims).
export function errorCode(err) {
  return err instanceof errors.JWTExpired ? 'token_expired' : 'token_invalid';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [baseURL, token] = process.argv.slice(2);
  const verify = await verifier(baseURL);
  try {
    console.log(JSON.stringify(await verify(token)));
  } catch (err) {
    console.log(JSON.stringify({ error: errorCode(err) }));
    process.exitCode = 1;
  }
}
