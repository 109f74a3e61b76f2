//! Database URLs as people write them, and why a connection failed, in one line that names
//! what to fix: the URL is checked (and SQLite's natural form completed) when it is parsed,
//! and a failed start is diagnosed with a plain TCP probe and one direct connection instead of
//! the pool's "timed out while waiting for an open connection".

use std::path::Path;
use std::time::Duration;

use sea_orm::DbErr;
use sea_orm::sqlx::Connection;

/// How long the diagnosis waits for the server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks a `--database-url` (or `--read-database-url`) and completes SQLite's natural
/// form: `sqlite://FILE` creates FILE when its directory exists (`?mode=rwc` is added), a
/// missing directory is named; a server URL must name its database.
pub fn parse(url: &str) -> Result<String, String> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return sqlite(url, rest);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(
            "a database URL is sqlite://FILE, postgres://USER@HOST:PORT/DATABASE or mysql://USER@HOST:PORT/DATABASE"
                .into(),
        );
    };
    let example = match scheme {
        "postgres" | "postgresql" => "postgres://user@127.0.0.1:5432/newapi",
        "mysql" | "mariadb" => "mysql://user@127.0.0.1:3306/newapi",
        other => {
            return Err(format!(
                "unknown database kind {other:?}: use sqlite://, postgres:// or mysql://"
            ));
        }
    };
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let database = path.split_once('/').map(|(_, db)| db).unwrap_or_default();
    if database.is_empty() {
        return Err(format!(
            "the database URL names no database: add its name after the host, e.g. {example}"
        ));
    }
    if !scheme.starts_with("postgres")
        && rest
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("pgbouncer=")))
    {
        return Err("pgbouncer=true is for PostgreSQL URLs (PgBouncer pools PostgreSQL)".into());
    }
    Ok(url.to_owned())
}

/// The query parameter that says a PostgreSQL URL reaches the server through a
/// transaction-pooling PgBouncer (the convention of other drivers).
const PGBOUNCER: &str = "pgbouncer";

/// Whether `url` says it goes through a transaction-pooling PgBouncer (`pgbouncer=true`,
/// also `1`, `yes`, `on`), and the URL without that parameter (the driver does not know it).
pub fn pgbouncer(url: &str) -> (bool, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (false, url.to_owned());
    };
    let mut on = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
            if name.eq_ignore_ascii_case(PGBOUNCER) {
                on = matches!(
                    value.to_ascii_lowercase().as_str(),
                    "true" | "1" | "yes" | "on"
                );
                false
            } else {
                true
            }
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (on && url.starts_with("postgres"), url)
}

fn sqlite(url: &str, rest: &str) -> Result<String, String> {
    if url.contains(":memory:") || url.contains("mode=") {
        return Ok(url.to_owned());
    }
    let file = rest.trim_start_matches("//");
    let file = file.split('?').next().unwrap_or_default();
    if file.is_empty() {
        return Err("name the SQLite file, e.g. sqlite://mj-tasks.db".into());
    }
    let dir = Path::new(file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir
        && !dir.is_dir()
    {
        return Err(format!(
            "the directory {} does not exist: create it, or name a file in an existing one",
            dir.display()
        ));
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}mode=rwc"))
}

/// `host:port` of a server URL (with the kind's default port).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = if scheme.starts_with("postgres") {
        5432
    } else {
        3306
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, port) = v6.split_once(']')?;
        let port = port.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_owned(), port.unwrap_or(default)));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default)),
    }
}

/// Why connecting to `url` failed, in one line: from a TCP probe and one direct connection
/// (the pool only says it timed out), else from `err` itself.
pub async fn explain(url: &str, err: &DbErr) -> String {
    if let Some(file) = url.strip_prefix("sqlite:") {
        let file = file.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or_default();
        return format!(
            "cannot open the SQLite database {file}: {}",
            root_cause(err)
        );
    }
    let Some((host, port)) = host_port(url) else {
        return root_cause(err);
    };
    let place = format!("{host}:{port}");
    let probe = tokio::time::timeout(
        PROBE_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await;
    match probe {
        Err(_) => {
            return format!("{place} did not answer within 2 s (a firewall, or the wrong host?)");
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return format!(
                "nothing accepts connections on {place} (connection refused): is the database server running there?"
            );
        }
        Ok(Err(e)) => return format!("cannot reach {place}: {e}"),
        Ok(Ok(_)) => {}
    }
    let postgres = url.starts_with("postgres");
    let kind = if postgres {
        "PostgreSQL"
    } else {
        "MySQL/MariaDB"
    };
    let direct = if postgres {
        tokio::time::timeout(PROBE_TIMEOUT, async {
            sea_orm::sqlx::PgConnection::connect(url).await.map(|_| ())
        })
        .await
    } else {
        tokio::time::timeout(PROBE_TIMEOUT, async {
            sea_orm::sqlx::MySqlConnection::connect(url)
                .await
                .map(|_| ())
        })
        .await
    };
    use sea_orm::sqlx::Error as E;
    match direct {
        Err(_) => format!(
            "{place} accepts connections but does not answer as {kind} within 2 s: is it a {kind} server?"
        ),
        Ok(Ok(())) => format!("{place}: {}", root_cause(err)),
        Ok(Err(E::Database(db))) => format!("{place}: {}", db.message()),
        Ok(Err(E::Protocol(_) | E::Tls(_) | E::Io(_) | E::Decode(_))) => {
            format!(
                "{place} does not speak the {kind} protocol: is it another kind of server (check the port)?"
            )
        }
        Ok(Err(E::Configuration(e))) => format!("the database URL is not valid: {e}"),
        Ok(Err(e)) => format!("{place}: {}", first_line(&e.to_string())),
    }
}

/// The innermost cause of `err`, without the driver's source locations.
fn root_cause(err: &DbErr) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(inner) = source.source() {
        source = inner;
    }
    first_line(&source.to_string())
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    // sqlx adds "(sqlx_postgres::connection::tls:95)"-style locations to some messages.
    let line = match line.rfind(" (sqlx_") {
        Some(at) => &line[..at],
        None => line,
    };
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_must_name_a_database() {
        assert!(parse("postgres://postgres@127.0.0.1:5432/newapi").is_ok());
        for bad in [
            "postgres://postgres@127.0.0.1:5432",
            "postgres://postgres@127.0.0.1:5432/",
            "mysql://root@127.0.0.1:3306/?ssl-mode=disabled",
        ] {
            let e = parse(bad).err().unwrap_or_default();
            assert!(e.contains("names no database"), "{bad}: {e}");
        }
        assert!(parse("mongodb://x/y").is_err());
        assert!(parse("newapi.db").is_err());
    }

    #[test]
    fn sqlite_files_are_created_where_the_directory_exists() {
        assert_eq!(
            parse("sqlite://fresh.db").as_deref(),
            Ok("sqlite://fresh.db?mode=rwc")
        );
        assert_eq!(
            parse("sqlite://x.db?mode=ro").as_deref(),
            Ok("sqlite://x.db?mode=ro")
        );
        let e = parse("sqlite:///no/such/dir/x.db")
            .err()
            .unwrap_or_default();
        assert!(e.contains("/no/such/dir does not exist"), "{e}");
    }

    #[test]
    fn host_and_port_with_defaults() {
        assert_eq!(
            host_port("postgres://u:p@db.example:6543/x"),
            Some(("db.example".into(), 6543))
        );
        assert_eq!(host_port("mysql://root@h/x"), Some(("h".into(), 3306)));
        assert_eq!(
            host_port("postgres://u@[::1]:5433/x"),
            Some(("::1".into(), 5433))
        );
    }
}
