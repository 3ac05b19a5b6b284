//! A real SMTP receiver for tests: it listens on a free loopback port, speaks the
//! plain SMTP a client needs to hand over a message (EHLO/HELO, MAIL, RCPT, DATA
//! with dot-unstuffing, RSET, NOOP, QUIT) and hands every accepted message to the
//! test. It can refuse the next messages with a temporary error, to test retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// One message the sink accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends, dots unstuffed).
    pub data: String,
}

impl Mail {
    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut out: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = out.as_mut()
                && (line.starts_with(' ') || line.starts_with('\t'))
            {
                v.push_str(line.trim_start());
                continue;
            }
            if out.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                out = Some(v.trim().to_owned());
            }
        }
        out
    }

    /// The body (after the header block).
    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// The running receiver; it stops when dropped with the test's runtime.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Mail>,
    refuse: Arc<AtomicU32>,
}

impl Sink {
    /// Listen on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, received) = mpsc::unbounded_channel();
        let refuse = Arc::new(AtomicU32::new(0));
        let r = refuse.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(session(conn, tx.clone(), r.clone()));
            }
        });
        Ok(Self { addr, received, refuse })
    }

    /// The URL a client is configured with (`smtp://127.0.0.1:port`, no TLS).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Answer the next `n` messages with `451` (try again later).
    pub fn refuse_next(&self, n: u32) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    /// The next accepted message, if one comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Mail> {
        tokio::time::timeout(within, self.received.recv()).await.ok().flatten()
    }

    /// Every message accepted within `window`.
    pub async fn collect(&mut self, window: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.received.recv()).await {
            out.push(m);
        }
        out
    }
}

/// The angle-bracketed address after `MAIL FROM:` or `RCPT TO:`.
fn path(arg: &str) -> String {
    let a = arg.trim();
    let a = a.split_once('<').map_or(a, |(_, r)| r);
    a.split_once('>').map_or(a, |(l, _)| l).to_owned()
}

async fn session(conn: tokio::net::TcpStream, tx: mpsc::UnboundedSender<Mail>, refuse: Arc<AtomicU32>) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 sink.test ESMTP test sink\r\n").await?;
    let (mut from, mut to) = (None::<String>, Vec::<String>::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(path(&line[10..]));
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                b"503 MAIL first\r\n"
            } else {
                to.push(path(&line[8..]));
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                w.write_all(b"503 RCPT first\r\n").await?;
                continue;
            }
            w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                let Some(l) = lines.next_line().await? else { return Ok(()) };
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push_str("\r\n");
            }
            let refused = refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if refused {
                w.write_all(b"451 try again later\r\n").await?;
            } else {
                let _ = tx.send(Mail { from: from.take().unwrap_or_default(), to: std::mem::take(&mut to), data });
                w.write_all(b"250 OK queued\r\n").await?;
            }
            from = None;
            to.clear();
            continue;
        } else if upper == "RSET" {
            from = None;
            to.clear();
            b"250 OK\r\n"
        } else if upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        w.write_all(reply).await?;
    }
    Ok(())
}
