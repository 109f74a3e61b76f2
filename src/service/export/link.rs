//! Short-lived signed download links: what an export is (log, viewer, scope, filter, order,
//! format, time zone) and until when, signed with HMAC-SHA256 so that a browser can start a
//! download with a plain link (which cannot carry an `Authorization` header).
//!
//! A link is `<claims>.<mac>`, both base64url. It names its user: at download the user is
//! read again (a ban, a demotion or a deletion applies to links already issued), and a
//! request that also presents credentials must present that same user's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::service::export::format::Format;
use crate::service::{KeyOrder, Log};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Longest link token issued or accepted (a link must fit in a request line every server
/// and proxy reads); a filter too large for one is exported through the REST routes.
pub const MAX_TOKEN: usize = 4 * 1024;
/// Default lifetime of a link, in seconds.
pub const DEFAULT_TTL_SECS: u64 = 300;

/// The key links are signed with.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    /// `secret` as the key; an empty secret gives a random key (links then work only on the
    /// instance that issued them, until it restarts).
    pub fn new(secret: &str) -> LinkKey {
        if secret.is_empty() {
            LinkKey(rand::random::<[u8; 32]>().to_vec())
        } else {
            LinkKey(secret.as_bytes().to_vec())
        }
    }

    fn mac(&self, data: &[u8]) -> Result<HmacSha256, Error> {
        // HMAC takes a key of any length; the error cannot happen.
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&self.0).map_err(|_| Error::Internal)?;
        mac.update(data);
        Ok(mac)
    }
}

/// What a link stands for.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Claims<L: Log> {
    /// The log's table: a link of one log does not open another.
    pub log: String,
    /// The user it was issued to.
    pub user: i64,
    /// Only the user's own tasks (`/self`), else all the user may see.
    pub own: bool,
    pub filter: L::Filter,
    pub order: Vec<KeyOrder<L::Field>>,
    pub format: Format,
    /// The IANA time zone of the ISO times.
    pub tz: String,
    /// A UTF-8 BOM before a CSV.
    pub bom: bool,
    /// Expiry, epoch seconds.
    pub exp: i64,
}

/// Signs `claims`.
pub fn sign<L: Log>(key: &LinkKey, claims: &Claims<L>) -> Result<String, Error> {
    let json = serde_json::to_vec(claims).map_err(|_| Error::Internal)?;
    let body = B64.encode(json);
    let tag = B64.encode(key.mac(body.as_bytes())?.finalize().into_bytes());
    let token = format!("{body}.{tag}");
    if token.len() > MAX_TOKEN {
        return Err(Error::BadFilter(format!(
            "this filter is too large for a download link (over {MAX_TOKEN} bytes): simplify it, or export through the REST routes"
        )));
    }
    Ok(token)
}

/// The claims of `token`, when it was signed with `key`, is for log `L` and has not
/// expired at `now` (epoch seconds).
pub fn open<L: Log>(key: &LinkKey, token: &str, now: i64) -> Result<Claims<L>, Error> {
    if token.len() > MAX_TOKEN {
        return Err(Error::LinkInvalid);
    }
    let (body, tag) = token.split_once('.').ok_or(Error::LinkInvalid)?;
    let tag = B64.decode(tag).map_err(|_| Error::LinkInvalid)?;
    key.mac(body.as_bytes())?
        .verify_slice(&tag)
        .map_err(|_| Error::LinkInvalid)?;
    let json = B64.decode(body).map_err(|_| Error::LinkInvalid)?;
    let claims: Claims<L> = serde_json::from_slice(&json).map_err(|_| Error::LinkInvalid)?;
    if claims.log != L::TABLE {
        return Err(Error::LinkInvalid);
    }
    if claims.exp < now {
        return Err(Error::LinkExpired);
    }
    Ok(claims)
}
