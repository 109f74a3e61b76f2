//! The server binary in a process of its own (for signals, memory and file-descriptor
//! counts), and a minimal HTTP/1.1 client on raw sockets for what a polite client cannot do
//! (slow headers, idle keep-alive connections, oversized heads).

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `mj-tasks serve`; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl ServerProcess {
    /// Starts the server on `database_url` with `args` and waits until `/healthz` answers 200.
    pub async fn start(database_url: &str, args: &[&str]) -> ServerProcess {
        Self::start_logging(database_url, args, "warn,mj_tasks::server=info").await
    }

    /// [`ServerProcess::start`] with `RUST_LOG` set to `log`.
    pub async fn start_logging(database_url: &str, args: &[&str], rust_log: &str) -> ServerProcess {
        Self::start_on(free_port(), database_url, args, rust_log).await
    }

    /// [`ServerProcess::start_logging`] on `port` (the same port again, for a restart).
    pub async fn start_on(
        port: u16,
        database_url: &str,
        args: &[&str],
        rust_log: &str,
    ) -> ServerProcess {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
            .args(["serve", "--listen", &addr.to_string()])
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("start the server");
        let server = ServerProcess { child, addr, log };
        server.wait_healthy(Duration::from_secs(60)).await;
        server
    }

    /// Waits until `/healthz` answers 200.
    pub async fn wait_healthy(&self, within: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(self.url("/healthz")).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < within,
                "server not healthy: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named `name` (TERM, STOP, CONT…).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        mj_tasks::bench::http::memory(self.pid()).0
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A GET request head for `path` with `headers` (keep-alive).
pub fn get_request(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Reads one response (Content-Length framed) from `stream`; `None` when the connection
/// closed or failed first.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut response = RawResponse {
        status,
        head,
        body: String::new(),
    };
    let length: usize = response
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    response.body = String::from_utf8_lossy(&body[..length]).into_owned();
    Some(response)
}

/// Connects, sends `request` and reads the answer (the connection stays open).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> (TcpStream, Option<RawResponse>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let response = read_response(&mut stream).await;
    (stream, response)
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
