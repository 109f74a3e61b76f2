//! Rate budgets shared by every instance: the same generic cell rate algorithm as the local
//! limiter ([`crate::server::RateLimits`]), run inside Redis as one script, so a check and
//! its update are one atomic step on the server's clock (no read-modify-write across
//! instances, no clock skew between them).
//!
//! Each key holds its theoretical arrival time in microseconds and expires when it would be
//! back at a full burst, so idle clients cost Redis nothing. Keys name a client address as
//! written, or a SHA-256 digest of the credentials (tokens never reach Redis).

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::{Cluster, ClusterError};

/// Checks every budget, then spends one request of each only if all admit (a refused
/// request costs nothing); answers 0, or the microseconds until the request would be
/// admitted. ARGV holds, per key, its interval and its burst tolerance in microseconds.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local next = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  if tat > now + burst then
    wait = math.max(wait, tat - burst - now)
  end
  next[i] = tat + interval
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', next[i]), 'PX', math.ceil((next[i] - now) / 1000) + 1)
end
return 0
";

/// The script, hashed once (sent by hash; loaded again by the driver when Redis lost it).
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

/// One budget to spend: the key and its rate (requests a second, bursts of as many).
#[derive(Debug)]
pub struct Budget {
    pub key: String,
    pub rate: u32,
}

impl Budget {
    /// The budget of a client address.
    pub fn ip(cluster: &Cluster, ip: std::net::IpAddr, rate: u32) -> Budget {
        Budget {
            key: cluster.key(&format!("rate:ip:{ip}")),
            rate,
        }
    }

    /// The budget of a set of credentials (a digest of them: no token is stored).
    pub fn user(cluster: &Cluster, token: &str, user: Option<i64>, rate: u32) -> Budget {
        let mut digest = Sha256::new();
        digest.update(token.as_bytes());
        digest.update(b"\0");
        digest.update(user.unwrap_or(-1).to_le_bytes());
        let hex: String = digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Budget {
            key: cluster.key(&format!("rate:user:{hex}")),
            rate,
        }
    }
}

/// Spends one request of each budget: `Ok(Ok(()))` when admitted, `Ok(Err(seconds))` when
/// refused (seconds to wait, rounded up), `Err` when Redis did not answer.
pub async fn admit(cluster: &Cluster, budgets: &[Budget]) -> Result<Result<(), u64>, ClusterError> {
    if budgets.is_empty() {
        return Ok(Ok(()));
    }
    let mut invocation = SCRIPT.prepare_invoke();
    for b in budgets {
        let interval = 1_000_000 / u64::from(b.rate.max(1));
        invocation
            .key(&b.key)
            .arg(interval)
            .arg(interval * u64::from(b.rate.max(1).saturating_sub(1)));
    }
    let wait_us: u64 = cluster
        .call(async |conn| invocation.invoke_async(conn).await)
        .await?;
    Ok(if wait_us == 0 {
        Ok(())
    } else {
        Err(wait_us.div_ceil(1_000_000))
    })
}
