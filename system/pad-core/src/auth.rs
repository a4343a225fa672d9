//! Accounts and tokens.
//!
//! - An account is an e-mail (trimmed, lower-cased) and an argon2id hash of
//!   its password in PHC form (the parameters travel with the hash).
//! - An access token is short-lived ([`ACCESS_TTL_MS`]); a refresh token
//!   lives longer ([`REFRESH_TTL_MS`]) and is rotated on each use. Both are
//!   `v1.<payload>.<mac>`: the payload is the [`Claims`] as JSON, the MAC
//!   an HMAC-SHA256 over `v1.<payload>` with the platform's key, both in
//!   base64url without padding. Expiry is judged by the caller's clock (the
//!   gateway's), passed in as `now_ms`.
//! - Every login starts a token family; each token carries its family and
//!   its own id. The family (kept in the auth service's store) names the
//!   one refresh token that may be used next: a refresh with any other of
//!   the family's tokens is a reuse (a stolen token replayed), which revokes
//!   the whole family; logout revokes it too. A revoked family's tokens,
//!   access tokens included, are refused wherever the family is read.
//! - Whatever is wrong with a token, the caller learns only
//!   [`codes::UNAUTHENTICATED`]; [`TokenError`] keeps the reason for logs.

use crate::{codes, Refusal};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// An access token's life: 5 minutes.
pub const ACCESS_TTL_MS: u64 = 5 * 60 * 1000;
/// A refresh token's life: 7 days.
pub const REFRESH_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// Passwords: 8 to 128 characters.
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// The cost of a password hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
}

impl KdfCost {
    /// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
    pub const PRODUCTION: KdfCost = KdfCost {
        m_kib: 19 * 1024,
        t: 2,
    };
    /// For tests and the simulator, where thousands of accounts are made:
    /// 64 KiB, 1 pass (still argon2id, still verified the same way).
    pub const CHEAP: KdfCost = KdfCost { m_kib: 64, t: 1 };
}

/// The e-mail as stored: trimmed and lower-cased, or why it is refused.
pub fn normalize_email(email: &str) -> Result<String, Refusal> {
    let e = email.trim().to_lowercase();
    let bad = || Refusal::input("email: expected an address like name@example.com");
    if e.is_empty() || e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(e)
}

/// Whether a new password is acceptable.
pub fn check_password(password: &str) -> Result<(), Refusal> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(Refusal::input(format!(
            "password: expected {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {n}"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(Refusal::input(
            "password: control characters are not allowed",
        ));
    }
    Ok(())
}

/// The argon2id hash of `password` in PHC form, salted with `salt` (16
/// bytes from the caller: the OS in real mode, the seeded RNG in the
/// simulator).
pub fn hash_password(password: &str, salt: &[u8; 16], cost: KdfCost) -> String {
    count_kdf_run();
    let params = Params::new(cost.m_kib, cost.t, 1, None).expect("valid argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(salt).expect("16 bytes make a salt");
    argon
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

/// Runs the password hash at `cost` for nothing: a login of an unknown
/// e-mail takes as long as one with a wrong password, so its timing does not
/// tell which e-mails have accounts.
pub fn spend_like_a_verify(password: &str, cost: KdfCost) {
    std::hint::black_box(hash_password(password, &[0x5a; 16], cost));
}

thread_local! {
    static KDF_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many password hashes this thread has run (hashes, verifications
/// and [`spend_like_a_verify`]): for tests.
pub fn kdf_runs_on_this_thread() -> u64 {
    KDF_RUNS.with(|c| c.get())
}

fn count_kdf_run() {
    KDF_RUNS.with(|c| c.set(c.get() + 1));
}

/// Whether `password` matches a stored hash (false for a hash that does
/// not parse).
pub fn verify_password(password: &str, phc: &str) -> bool {
    count_kdf_run();
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// The refusal for a login that fails, whatever failed.
pub fn invalid_credentials() -> Refusal {
    Refusal::new(codes::INVALID_CREDENTIALS, "invalid e-mail or password")
}

/// The refusal for a call without a valid token, whatever is wrong.
pub fn unauthenticated() -> Refusal {
    Refusal::new(codes::UNAUTHENTICATED, "a valid access token is required")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: u64,
    pub admin: bool,
    pub kind: TokenKind,
    /// Expires at this time (ms, the issuer's clock).
    pub exp: u64,
    /// The login's token family.
    pub fam: String,
    /// This token's id, unique within its family.
    pub jti: String,
}

/// Why a token was refused (for logs; clients see [`unauthenticated`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    WrongKind,
    Revoked,
    Reused,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length")
}

/// The token for `claims`, signed with `key`.
pub fn sign(claims: &Claims, key: &[u8]) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let signed = format!("v1.{payload}");
    let mut m = mac(key);
    m.update(signed.as_bytes());
    format!("{signed}.{}", B64.encode(m.finalize().into_bytes()))
}

/// A token's claims read without checking its signature or expiry: for
/// logs and audits, never to decide anything.
pub fn peek(token: &str) -> Option<Claims> {
    let (signed, _) = token.rsplit_once('.')?;
    let payload = signed.strip_prefix("v1.")?;
    serde_json::from_slice(&B64.decode(payload).ok()?).ok()
}

/// The claims of a token signed with `key`, of kind `want`, not expired at
/// `now_ms`. Never panics, whatever the input.
pub fn verify(token: &str, key: &[u8], now_ms: u64, want: TokenKind) -> Result<Claims, TokenError> {
    if token.len() > 4096 {
        return Err(TokenError::Malformed);
    }
    let (signed, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let payload = signed.strip_prefix("v1.").ok_or(TokenError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(key);
    m.update(signed.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let json = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.kind != want {
        return Err(TokenError::WrongKind);
    }
    if now_ms >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// A login's token family, as the auth service stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub user: u64,
    /// The refresh token that may be used next.
    pub current: String,
    pub revoked: bool,
}

impl Family {
    /// Whether a token of this family is still honoured (an access token:
    /// the family is not revoked; a refresh token: also the current one).
    pub fn allows(&self, c: &Claims) -> Result<(), TokenError> {
        if self.revoked {
            return Err(TokenError::Revoked);
        }
        if c.kind == TokenKind::Refresh && c.jti != self.current {
            return Err(TokenError::Reused);
        }
        Ok(())
    }

    /// A refresh with token `c`: the family rotated to `next_jti`, or, for
    /// a reused (or revoked) token, the family revoked and the error.
    pub fn refresh(&self, c: &Claims, next_jti: &str) -> (Family, Result<(), TokenError>) {
        match self.allows(c) {
            Ok(()) => (
                Family {
                    current: next_jti.to_string(),
                    ..self.clone()
                },
                Ok(()),
            ),
            Err(e) => (
                Family {
                    revoked: true,
                    ..self.clone()
                },
                Err(e),
            ),
        }
    }
}

/// The two tokens a login or a refresh hands out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

/// Tokens for user `sub` in family `fam`: the access token and the refresh
/// token `jti`, issued at `now_ms`.
pub fn issue(sub: u64, admin: bool, fam: &str, jti: &str, now_ms: u64, key: &[u8]) -> TokenPair {
    issue_with_ttl(sub, admin, fam, jti, now_ms, key, ACCESS_TTL_MS)
}

/// [`issue`] with access tokens living `access_ttl_ms` (the simulator
/// uses seconds, so that tokens expire within a run).
pub fn issue_with_ttl(
    sub: u64,
    admin: bool,
    fam: &str,
    jti: &str,
    now_ms: u64,
    key: &[u8],
    access_ttl_ms: u64,
) -> TokenPair {
    let claims = |kind, ttl, jti: String| Claims {
        sub,
        admin,
        kind,
        exp: now_ms.saturating_add(ttl),
        fam: fam.to_string(),
        jti,
    };
    TokenPair {
        access: sign(
            &claims(TokenKind::Access, access_ttl_ms, format!("{jti}.a")),
            key,
        ),
        refresh: sign(
            &claims(TokenKind::Refresh, REFRESH_TTL_MS, jti.to_string()),
            key,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"the platform's signing key";

    #[test]
    fn emails_are_normalised_and_bad_ones_refused_with_the_field_named() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@.example.com",
            "ann@example..com",
            "ann@example.com.",
        ] {
            let r = normalize_email(bad).unwrap_err();
            assert_eq!(r.code, codes::BAD_USER_INPUT, "{bad:?}");
            assert!(r.message.starts_with("email:"), "{bad:?}: {}", r.message);
        }
        assert!(check_password("correct horse").is_ok());
        assert!(check_password("short")
            .unwrap_err()
            .message
            .contains("got 5"));
        assert!(check_password(&"x".repeat(129)).is_err());
        assert!(check_password("tab\there!").is_err());
    }

    #[test]
    fn a_password_hash_verifies_its_password_only() {
        let h = hash_password("correct horse", &[7; 16], KdfCost::CHEAP);
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        // Another salt, another hash.
        assert_ne!(h, hash_password("correct horse", &[8; 16], KdfCost::CHEAP));
    }

    #[test]
    fn tokens_verify_until_they_expire_and_not_with_another_key_or_kind() {
        let t = issue(42, false, "f1", "r1", 1_000, KEY);
        let c = verify(&t.access, KEY, 1_000, TokenKind::Access).unwrap();
        assert_eq!((c.sub, c.admin, c.fam.as_str()), (42, false, "f1"));
        assert_eq!(
            verify(&t.access, KEY, 1_000 + ACCESS_TTL_MS, TokenKind::Access),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&t.access, b"another key", 1_000, TokenKind::Access),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&t.refresh, KEY, 1_000, TokenKind::Access),
            Err(TokenError::WrongKind)
        );
        assert!(verify(&t.refresh, KEY, 1_000 + ACCESS_TTL_MS, TokenKind::Refresh).is_ok());
    }

    #[test]
    fn a_token_whose_claims_were_changed_is_refused() {
        let t = issue(42, false, "f1", "r1", 1_000, KEY);
        let (_, payload_and_sig) = t.access.split_at(3);
        let (payload, sig) = payload_and_sig.rsplit_once('.').unwrap();
        let mut claims: Claims = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        claims.admin = true;
        let forged = format!(
            "v1.{}.{sig}",
            B64.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(
            verify(&forged, KEY, 1_000, TokenKind::Access),
            Err(TokenError::BadSignature)
        );
        // "none" as the signature, a missing part, garbage.
        for bad in [
            format!("v1.{payload}."),
            format!("v1.{payload}"),
            "v2.x.y".into(),
            "".into(),
            ".".into(),
        ] {
            assert!(
                verify(&bad, KEY, 1_000, TokenKind::Access).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_reused_refresh_token_revokes_the_family_and_its_access_tokens() {
        let first = issue(1, false, "f", "r1", 0, KEY);
        let fam = Family {
            user: 1,
            current: "r1".into(),
            revoked: false,
        };
        let c1 = verify(&first.refresh, KEY, 10, TokenKind::Refresh).unwrap();
        let (fam, ok) = fam.refresh(&c1, "r2");
        assert_eq!((ok, fam.current.as_str()), (Ok(()), "r2"));
        // The old refresh token again: a reuse; the family is revoked.
        let (fam, reused) = fam.refresh(&c1, "r3");
        assert_eq!(reused, Err(TokenError::Reused));
        assert!(fam.revoked);
        // Even the rotated token and the access tokens are refused now.
        let second = issue(1, false, "f", "r2", 10, KEY);
        let c2 = verify(&second.refresh, KEY, 20, TokenKind::Refresh).unwrap();
        assert_eq!(fam.refresh(&c2, "r4").1, Err(TokenError::Revoked));
        let a = verify(&second.access, KEY, 20, TokenKind::Access).unwrap();
        assert_eq!(fam.allows(&a), Err(TokenError::Revoked));
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in ".{0,300}") {
            let _ = verify(&s, KEY, 0, TokenKind::Access);
            let _ = normalize_email(&s);
            let _ = check_password(&s);
        }

        #[test]
        fn any_change_to_a_token_is_refused(i in 0usize..400, c in proptest::char::range('!', '~')) {
            let t = issue(7, true, "fam", "jti", 0, KEY).access;
            let i = i % t.len();
            let mut b = t.clone().into_bytes();
            prop_assume!(b[i] != c as u8);
            b[i] = c as u8;
            let changed = String::from_utf8(b).unwrap();
            // Base64 padding bits may decode alike: the claims must then
            // be the same, never different ones.
            if let Ok(claims) = verify(&changed, KEY, 0, TokenKind::Access) {
                prop_assert_eq!(claims, verify(&t, KEY, 0, TokenKind::Access).unwrap());
            }
        }
    }
}
