//! The access-management service's data in its own Raft KV group, with the
//! rules of [`pad_core::auth`]:
//!
//! | key | value |
//! |---|---|
//! | `user/next` | the last user id given |
//! | `user/email/<e-mail>` | the user id |
//! | `user/<id>` | [`User`] as JSON |
//! | `fam/<family>` | [`Family`] as JSON: the refresh token that may be used next, revoked or not |
//!
//! A registration claims the e-mail and the next id in one transaction
//! (compare `user/next` and the e-mail's absence), so two registrations of
//! one e-mail never both succeed and ids are never given twice. The first
//! user is the admin (catalogue writes). Every check of a token reads its
//! family and its user linearizably: a logout, a detected reuse or a
//! deleted account is seen at once by every replica of every service.

use crate::client::{ClientError, KvClient};
use crate::kv::cmd;
use pad_core::auth::{self, Claims, Family, KdfCost, TokenKind, TokenPair};
use pad_core::codes;
use pad_core::Refusal;
use serde::{Deserialize, Serialize};

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub email: String,
    /// argon2id, PHC form.
    pub hash: String,
    pub admin: bool,
}

pub use super::PadError as AccountError;

fn email_key(email: &str) -> String {
    format!("user/email/{email}")
}

fn user_key(id: u64) -> String {
    format!("user/{id}")
}

fn fam_key(fam: &str) -> String {
    format!("fam/{fam}")
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialises")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> AccountError {
    AccountError::Store(ClientError::Failed(format!(
        "stored {what} is not valid: {e}"
    )))
}

/// Registers an account; its id, or why not (a malformed e-mail or
/// password, or [`codes::EMAIL_TAKEN`]). `salt` comes from the caller's
/// randomness.
pub async fn register(
    kv: &mut KvClient,
    email: &str,
    password: &str,
    salt: &[u8; 16],
    cost: KdfCost,
) -> Result<User, AccountError> {
    let email = auth::normalize_email(email)?;
    auth::check_password(password)?;
    let hash = auth::hash_password(password, salt, cost);
    let ek = email_key(&email);
    for _ in 0..100 {
        let r = kv.read(&["user/next", &ek]).await?;
        if r[1].is_some() {
            return Err(Refusal::new(
                codes::EMAIL_TAKEN,
                "email: an account with this e-mail exists",
            )
            .into());
        }
        let last: u64 = match &r[0] {
            None => 0,
            Some(v) => v.parse().map_err(|e| corrupt("user/next", e))?,
        };
        let user = User {
            id: last + 1,
            email: email.clone(),
            hash: hash.clone(),
            admin: last == 0,
        };
        let id = user.id.to_string();
        let done = kv
            .txn(
                vec![
                    cmd::compare("user/next", r[0].as_deref()),
                    cmd::compare(&ek, None),
                ],
                vec![
                    cmd::op_put("user/next", &id),
                    cmd::op_put(&ek, &id),
                    cmd::op_put(&user_key(user.id), &json(&user)),
                ],
                vec![],
            )
            .await?;
        if done.succeeded {
            return Ok(user);
        }
    }
    Err(ClientError::Failed("registration kept racing others; try again".into()).into())
}

/// The account `id`, if any.
pub async fn user(kv: &mut KvClient, id: u64) -> Result<Option<User>, AccountError> {
    match kv.get(&user_key(id)).await? {
        None => Ok(None),
        Some(v) => Ok(Some(
            serde_json::from_str(&v).map_err(|e| corrupt("user", e))?,
        )),
    }
}

/// Logs in: a new token family `fam` whose first refresh token is `jti`
/// (both unique, from the caller), tokens issued at `now_ms`. A wrong
/// e-mail and a wrong password fail alike.
pub async fn login(
    kv: &mut KvClient,
    email: &str,
    password: &str,
    fam: &str,
    jti: &str,
    now_ms: u64,
    key: &[u8],
) -> Result<TokenPair, AccountError> {
    login_with_ttl(
        kv,
        email,
        password,
        fam,
        jti,
        now_ms,
        key,
        auth::ACCESS_TTL_MS,
        auth::KdfCost::PRODUCTION,
    )
    .await
}

/// [`login`] with access tokens living `access_ttl_ms`; `kdf`: the cost of
/// the hashes this service makes (a refused login spends one, whatever was
/// wrong).
#[allow(clippy::too_many_arguments)]
pub async fn login_with_ttl(
    kv: &mut KvClient,
    email: &str,
    password: &str,
    fam: &str,
    jti: &str,
    now_ms: u64,
    key: &[u8],
    access_ttl_ms: u64,
    kdf: auth::KdfCost,
) -> Result<TokenPair, AccountError> {
    // Every refusal costs one password hash, as a wrong password does:
    // how long a login takes does not say whether the e-mail has an account.
    let refuse = || {
        auth::spend_like_a_verify(password, kdf);
        Err(auth::invalid_credentials().into())
    };
    let Ok(email) = auth::normalize_email(email) else {
        return refuse();
    };
    let Some(id) = kv.get(&email_key(&email)).await? else {
        return refuse();
    };
    let id: u64 = id.parse().map_err(|e| corrupt("user id", e))?;
    let Some(u) = user(kv, id).await? else {
        return refuse();
    };
    if !auth::verify_password(password, &u.hash) {
        return Err(auth::invalid_credentials().into());
    }
    let family = Family {
        user: u.id,
        current: jti.to_string(),
        revoked: false,
    };
    let r = kv.cas(&fam_key(fam), None, Some(&json(&family))).await?;
    if !r.succeeded && r.previous.as_deref() != Some(json(&family).as_str()) {
        return Err(ClientError::Failed(format!("token family {fam} exists already")).into());
    }
    Ok(auth::issue_with_ttl(
        u.id,
        u.admin,
        fam,
        jti,
        now_ms,
        key,
        access_ttl_ms,
    ))
}

/// The family and the user of a token, read together (linearizable).
async fn family_of(
    kv: &mut KvClient,
    c: &Claims,
) -> Result<Option<(Family, String)>, AccountError> {
    family_read(kv, c, false).await
}

/// [`family_of`]; `local` (the planted bug `pad-local-revocation`) reads one
/// replica's applied state instead, which may not have seen a logout yet.
async fn family_read(
    kv: &mut KvClient,
    c: &Claims,
    local: bool,
) -> Result<Option<(Family, String)>, AccountError> {
    let fk = fam_key(&c.fam);
    let r = if local {
        let nodes: Vec<_> = kv.nodes().keys().copied().collect();
        let node = nodes[(crate::shop::random_u64() as usize) % nodes.len()];
        kv.local_read(node, &[&fk, &user_key(c.sub)]).await?.0
    } else {
        kv.read(&[&fk, &user_key(c.sub)]).await?
    };
    let (Some(f), Some(_)) = (&r[0], &r[1]) else {
        return Ok(None);
    };
    let fam: Family = serde_json::from_str(f).map_err(|e| corrupt("family", e))?;
    if fam.user != c.sub {
        return Ok(None);
    }
    Ok(Some((fam, f.clone())))
}

/// The claims of a valid access token at `now_ms`: signed with `key`, not
/// expired, its family not revoked, its user not deleted. Anything else is
/// [`codes::UNAUTHENTICATED`] (the reason goes to the log).
pub async fn authenticate(
    kv: &mut KvClient,
    token: &str,
    now_ms: u64,
    key: &[u8],
) -> Result<Claims, AccountError> {
    authenticate_with(kv, token, now_ms, key, false).await
}

/// [`authenticate`], with the planted bug `pad-local-revocation` on or off.
pub async fn authenticate_with(
    kv: &mut KvClient,
    token: &str,
    now_ms: u64,
    key: &[u8],
    local_bug: bool,
) -> Result<Claims, AccountError> {
    let c = match auth::verify(token, key, now_ms, TokenKind::Access) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("access token refused: {e:?}");
            return Err(auth::unauthenticated().into());
        }
    };
    match family_read(kv, &c, local_bug).await? {
        Some((fam, _)) if fam.allows(&c).is_ok() => Ok(c),
        _ => Err(auth::unauthenticated().into()),
    }
}

/// Exchanges a refresh token for new tokens (the next refresh token is
/// `next_jti`); a refresh token used twice revokes its whole family.
pub async fn refresh(
    kv: &mut KvClient,
    token: &str,
    next_jti: &str,
    now_ms: u64,
    key: &[u8],
) -> Result<TokenPair, AccountError> {
    refresh_with_ttl(kv, token, next_jti, now_ms, key, auth::ACCESS_TTL_MS).await
}

/// [`refresh`] with access tokens living `access_ttl_ms`.
pub async fn refresh_with_ttl(
    kv: &mut KvClient,
    token: &str,
    next_jti: &str,
    now_ms: u64,
    key: &[u8],
    access_ttl_ms: u64,
) -> Result<TokenPair, AccountError> {
    let Ok(c) = auth::verify(token, key, now_ms, TokenKind::Refresh) else {
        return Err(auth::unauthenticated().into());
    };
    for _ in 0..100 {
        let Some((fam, raw)) = family_of(kv, &c).await? else {
            return Err(auth::unauthenticated().into());
        };
        let (next, verdict) = fam.refresh(&c, next_jti);
        if next != fam {
            let r = kv
                .cas(&fam_key(&c.fam), Some(&raw), Some(&json(&next)))
                .await?;
            if !r.succeeded {
                continue;
            }
        }
        return match verdict {
            Ok(()) => Ok(auth::issue_with_ttl(
                c.sub,
                c.admin,
                &c.fam,
                next_jti,
                now_ms,
                key,
                access_ttl_ms,
            )),
            Err(e) => {
                tracing::warn!("refresh refused ({e:?}): family {} revoked", c.fam);
                Err(auth::unauthenticated().into())
            }
        };
    }
    Err(ClientError::Failed("refresh kept racing others; try again".into()).into())
}

/// Logs out: revokes the family of a valid access token.
pub async fn logout(
    kv: &mut KvClient,
    token: &str,
    now_ms: u64,
    key: &[u8],
) -> Result<(), AccountError> {
    // A valid token of a family already revoked logs out again without
    // complaint: a retry after a logout whose answer was lost is answered
    // the same.
    let Ok(c) = auth::verify(token, key, now_ms, TokenKind::Access) else {
        return Err(auth::unauthenticated().into());
    };
    for _ in 0..100 {
        let Some((fam, raw)) = family_of(kv, &c).await? else {
            return Err(auth::unauthenticated().into());
        };
        if fam.user != c.sub {
            return Err(auth::unauthenticated().into());
        }
        if fam.revoked {
            return Ok(());
        }
        let revoked = Family {
            revoked: true,
            ..fam
        };
        if kv
            .cas(&fam_key(&c.fam), Some(&raw), Some(&json(&revoked)))
            .await?
            .succeeded
        {
            return Ok(());
        }
    }
    Err(ClientError::Failed("logout kept racing others; try again".into()).into())
}

/// Deletes an account (its e-mail may register again); its tokens are
/// refused from then on.
pub async fn delete_user(kv: &mut KvClient, id: u64) -> Result<bool, AccountError> {
    let Some(u) = user(kv, id).await? else {
        return Ok(false);
    };
    let done = kv
        .txn(
            vec![cmd::compare(&user_key(id), Some(&json(&u)))],
            vec![
                cmd::op_delete(&user_key(id)),
                cmd::op_delete(&email_key(&u.email)),
            ],
            vec![],
        )
        .await?;
    Ok(done.succeeded)
}
