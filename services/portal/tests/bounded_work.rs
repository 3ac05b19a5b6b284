//! Bounded work for every request: login and sign-up throttles keyed by the
//! client, the process's budget for password hashing, and the caps on live views.
//! Clients are told apart by their source address: the tests connect from
//! 127.0.0.x (all of 127/8 is loopback on Linux).

use fc_testkit::Harness;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// An answer: status, lowercase header lines, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A TCP connection to `addr` from 127.0.0.`from`.
async fn connect_from(addr: SocketAddr, from: u8) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)), 0))?;
    Ok(socket.connect(addr).await?)
}

/// One request from 127.0.0.`from`, read to the end.
async fn request_from(
    addr: SocketAddr,
    from: u8,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Answer> {
    let mut s = connect_from(addr, from).await?;
    s.write_all(head(addr, method, path, headers, body.len()).as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = parse_head(head);
    Ok(Answer { status, headers, body: body.to_string() })
}

fn head(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], len: usize) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {len}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head + "\r\n"
}

fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect())
}

fn login_form(email: &str, password: &str) -> String {
    format!("email={}&password={}", email.replace('@', "%40"), password.replace(' ', "+"))
}

async fn login(addr: SocketAddr, from: u8, email: &str, password: &str) -> anyhow::Result<Answer> {
    request_from(addr, from, "POST", "/login", &[FORM], login_form(email, password).as_bytes()).await
}

const EMAIL: &str = "owner@limits.example";
const PASSWORD: &str = "long enough password";

/// One login attempt of a table: from 127.0.0.`from`, right or wrong password, expected status.
struct Try {
    from: u8,
    email: &'static str,
    right: bool,
    want: u16,
}

fn t(from: u8, email: &'static str, right: bool, want: u16) -> Try {
    Try { from, email, right, want }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttles_key_on_the_client_and_refuse_before_any_hashing() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reg = h.registry.clone();
    reg.sign_up("Limits Co", "starter", EMAIL, "Owner", PASSWORD)?;
    let other = "nobody@limits.example";
    // (why, settings, attempts in order, argon2 runs they cost)
    type Tweak = fn(&mut fc_portal::Config);
    let cases: Vec<(&str, Tweak, Vec<Try>, u64)> = vec![
        (
            "wrong tries from one address do not lock the user out at another",
            |_| {},
            vec![
                t(2, EMAIL, false, 401),
                t(2, EMAIL, false, 401),
                t(2, EMAIL, false, 401),
                t(2, EMAIL, false, 401),
                t(2, EMAIL, false, 401),
                t(2, EMAIL, false, 429),
                t(2, EMAIL, true, 429),
                t(3, EMAIL, true, 303),
            ],
            6,
        ),
        (
            "beyond the per-address budget: 429 whatever the e-mail, and no hash",
            |c| c.login_attempts_per_address_per_minute = 3,
            vec![
                t(4, EMAIL, false, 401),
                t(4, other, false, 401),
                t(4, "x@limits.example", false, 401),
                t(4, "y@limits.example", false, 429),
                t(4, EMAIL, true, 429),
                t(5, EMAIL, true, 303),
            ],
            4,
        ),
        (
            "beyond the global budget: 429 for everyone, and no hash",
            |c| c.login_attempts_global_per_minute = 3,
            vec![
                t(6, other, false, 401),
                t(7, other, false, 401),
                t(8, EMAIL, false, 401),
                t(9, EMAIL, true, 429),
                t(10, other, false, 429),
            ],
            3,
        ),
    ];
    for (why, tweak, tries, want_hashes) in cases {
        let portal = h.portal_with(tweak).await?;
        let before = reg.password_work().total;
        for (i, a) in tries.iter().enumerate() {
            let r = login(portal.addr, a.from, a.email, if a.right { PASSWORD } else { "wrong password here" }).await?;
            assert_eq!(r.status, a.want, "{why}: attempt {i} from 127.0.0.{}: {}", a.from, r.body);
            if r.status == 429 {
                assert!(r.body.contains("Too many attempts") && r.header("retry-after").is_some(), "{why}: says why and when");
            }
        }
        assert_eq!(reg.password_work().total - before, want_hashes, "{why}: argon2 ran once per admitted attempt, never for a refused one");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_is_bounded_and_refuses_beyond_its_queue() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reg = h.registry.clone();
    reg.sign_up("Hash Co", "starter", EMAIL, "Owner", PASSWORD)?;
    // Many sign-ins at once run at most `password_hash_concurrency` hashes at a time.
    let portal = h
        .portal_with(|c| {
            c.password_hash_concurrency = 2;
            c.password_hash_queue = 64;
        })
        .await?;
    let before = reg.password_work().total;
    let attempts: Vec<_> = (0..12u8).map(|i| tokio::spawn(login(portal.addr, 20 + i, EMAIL, "wrong password here"))).collect();
    for a in attempts {
        assert_eq!(a.await??.status, 401);
    }
    let work = reg.password_work();
    assert_eq!(work.total - before, 12, "every attempt was checked");
    assert!(work.peak_concurrent <= 2, "at most 2 argon2 runs at once, saw {}", work.peak_concurrent);

    // With the only slot taken and no queue, a sign-in is refused at once with 503, unhashed.
    let portal = h
        .portal_with(|c| {
            c.password_hash_concurrency = 1;
            c.password_hash_queue = 0;
        })
        .await?;
    let state = portal.state.clone();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let held = tokio::spawn(async move { state.hashing.run(move || gate.recv().is_ok()).await });
    fc_testkit::wait_until(std::time::Duration::from_secs(10), "the slot to be taken", || async { portal.state.hashing.free_slots() == 0 })
        .await?;
    let before = reg.password_work().total;
    let r = login(portal.addr, 40, EMAIL, PASSWORD).await?;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("Try again") && r.header("retry-after") == Some("1"), "{:?} {}", r.headers, r.body);
    let r = request_from(
        portal.addr,
        40,
        "POST",
        "/signup",
        &[FORM],
        b"company=Busy+Co&plan=starter&name=N&email=n%40busy.example&password=long+enough+password",
    )
    .await?;
    assert_eq!(r.status, 503, "sign-up shares the budget: {}", r.body);
    assert_eq!(reg.password_work().total, before, "nothing was hashed");
    release.send(())?;
    assert!(held.await?.is_ok());
    assert_eq!(login(portal.addr, 41, EMAIL, PASSWORD).await?.status, 303, "the slot is free again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_counts_only_when_a_trusted_proxy_sent_it() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reg = h.registry.clone();
    // 127.0.0.2 is the reverse proxy; 127.0.0.3 is a client that reaches the portal directly.
    let portal = h
        .portal_with(|c| {
            c.signups_per_ip_per_hour = 1;
            c.trusted_proxies = vec!["127.0.0.2".into()];
        })
        .await?;
    // (from, X-Forwarded-For, expected status, why)
    let cases: [(u8, Option<&str>, u16, &str); 7] = [
        (3, Some("198.51.100.1"), 303, "a direct client's first sign-up"),
        (3, Some("198.51.100.2"), 429, "a direct client cannot claim another address"),
        (2, Some("198.51.100.1"), 303, "forwarded by the proxy: the forwarded client's own budget"),
        (2, Some("198.51.100.2"), 303, "another forwarded client: another budget"),
        (2, Some("198.51.100.2"), 429, "that forwarded client's budget is spent"),
        (2, Some("203.0.113.9, 198.51.100.2"), 429, "an address the client prepended is not believed"),
        (2, None, 303, "the proxy's own request: the proxy's budget"),
    ];
    for (i, (from, xff, want, why)) in cases.iter().enumerate() {
        let body = format!("company=Co+{i}&plan=starter&name=N&email=n{i}%40proxy.example&password=long+enough+password");
        let mut headers = vec![FORM];
        if let Some(xff) = xff {
            headers.push(("x-forwarded-for", xff));
        }
        let r = request_from(portal.addr, *from, "POST", "/signup", &headers, body.as_bytes()).await?;
        assert_eq!(r.status, *want, "{why}: {}", r.body);
    }
    assert_eq!(reg.list_tenants()?.len(), 4, "the refused sign-ups created nothing");
    // Login keys on the same client address: two forwarded clients, two budgets.
    let portal = h
        .portal_with(|c| {
            c.login_attempts_per_address_per_minute = 1;
            c.trusted_proxies = vec!["127.0.0.0/8".into()];
        })
        .await?;
    let form = login_form("n0@proxy.example", "wrong password here");
    for (xff, want) in [("198.51.100.7", 401), ("198.51.100.7", 429), ("198.51.100.8", 401)] {
        let r = request_from(portal.addr, 4, "POST", "/login", &[FORM, ("x-forwarded-for", xff)], form.as_bytes()).await?;
        assert_eq!(r.status, want, "login forwarded for {xff}");
    }
    Ok(())
}

/// A live view being received: the open connection, after the response head.
struct LiveView {
    status: u16,
    conn: tokio::net::TcpStream,
    seen: String,
}

/// Open `/machines/{machine}/live` with a session cookie and read the response head.
async fn open_live(addr: SocketAddr, cookie: &str, machine: &str) -> anyhow::Result<LiveView> {
    let mut conn = connect_from(addr, 1).await?;
    let path = format!("/machines/{machine}/live");
    conn.write_all(head(addr, "GET", &path, &[("cookie", cookie), ("accept", "text/event-stream")], 0).as_bytes()).await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains("\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (status, _) = parse_head(text.split_once("\r\n\r\n").map_or(text.as_str(), |(h, _)| h));
    Ok(LiveView { status, conn, seen: text })
}

impl LiveView {
    /// Read until the server ends the stream (bounded by a generous deadline).
    async fn ended(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let until_end = async {
            loop {
                match self.conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), until_end).await.is_ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_views_end_with_their_session_and_are_capped() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reg = h.registry.clone();
    let (t, owner) = reg.sign_up("Live Co", "growth", EMAIL, "Owner", PASSWORD)?;
    let portal = h
        .portal_with(|c| {
            c.live_views_per_session = 2;
            c.live_views_per_tenant = 3;
            c.live_session_check_ms = 50;
        })
        .await?;
    let addr = portal.addr;
    let session = |u: &fc_registry::User| -> anyhow::Result<(String, String)> {
        let (sid, s) = reg.create_session(u)?;
        Ok((format!("fc_session={sid}"), s.csrf))
    };
    let (a, a_csrf) = session(&owner)?;
    let (b, _) = session(&owner)?;
    let views = || portal.state.live_views.len();

    // Per session: the third view of session A is refused; per tenant: the fourth of the tenant.
    let mut a1 = open_live(addr, &a, "press-1").await?;
    let mut a2 = open_live(addr, &a, "press-2").await?;
    assert_eq!((a1.status, a2.status), (200, 200), "{} {}", a1.seen, a2.seen);
    let mut refused = open_live(addr, &a, "press-3").await?;
    assert_eq!(refused.status, 429, "{}", refused.seen);
    refused.ended().await;
    assert!(refused.seen.contains("live views open"), "says why: {}", refused.seen);
    let b1 = open_live(addr, &b, "press-1").await?;
    assert_eq!(b1.status, 200);
    let mut refused = open_live(addr, &b, "press-2").await?;
    assert_eq!(refused.status, 429, "the tenant's cap: {}", refused.seen);
    refused.ended().await;
    assert!(refused.seen.contains("organisation"), "{}", refused.seen);

    // A view that closes frees its place.
    drop(a1);
    fc_testkit::wait_until(std::time::Duration::from_secs(20), "the closed view to be counted out", || async { views() == 2 }).await?;
    a1 = open_live(addr, &a, "press-3").await?;
    assert_eq!(a1.status, 200, "{}", a1.seen);

    // Logout ends every open view of that session, and only those.
    let form = format!("csrf={a_csrf}");
    let r = request_from(addr, 1, "POST", "/logout", &[FORM, ("cookie", &a)], form.as_bytes()).await?;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(a1.ended().await && a2.ended().await, "logout ends the session's live views");
    fc_testkit::wait_until(std::time::Duration::from_secs(20), "the ended views to be counted out", || async { views() == 1 }).await?;
    assert_eq!(b1.status, 200);
    let mut b1 = b1;

    // A lower role ends the view (the page reconnects with what the session allows now);
    // so does the user's session expiring or going away (the same check).
    let op = reg.create_user(&t.id, "op@limits.example", "Op", fc_registry::Role::Operator, PASSWORD)?;
    let (c, _) = session(&op)?;
    let mut c1 = open_live(addr, &c, "press-1").await?;
    assert_eq!(c1.status, 200);
    reg.set_role(&t.id, &op.id, fc_registry::Role::Viewer)?;
    assert!(c1.ended().await, "demotion ends the view");
    reg.delete_session(b.trim_start_matches("fc_session="))?;
    assert!(b1.ended().await, "a deleted session ends the view");
    fc_testkit::wait_until(std::time::Duration::from_secs(20), "every view to be counted out", || async { views() == 0 }).await?;
    Ok(())
}
