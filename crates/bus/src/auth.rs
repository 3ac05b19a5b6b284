//! Each service's NATS user and what it may publish and subscribe to: the
//! `authorization` block of the nats-server `factorychain up` starts. A
//! service outside its subjects gets a permissions violation from the server
//! (a publish is dropped, a subscription receives nothing).
//!
//! | user | publish | subscribe |
//! | --- | --- | --- |
//! | `ingest` | `fc.*.telemetry.>` (JetStream), `$JS.API.>`, `$JS.ACK.>` | `_INBOX.>` (replies), `fc.sys.tenancy` |
//! | `portal` | `fc.sys.tenancy` | `fc.*.telemetry.>` and `fc.*.events.alarm` (live views), `_INBOX.>` |
//! | `settlement` | nothing | `fc.sys.tenancy` (partnership changes, revocations), `_INBOX.>` |
//! | `monitor` | `fc.*.events.alarm` (JetStream), `$JS.API.>`, `$JS.ACK.>` | `_INBOX.>` (replies, pulled telemetry) |
//!
//! Invariant: only the tenancy owner (the portal) announces revocations, only
//! ingest writes telemetry, only the monitor announces alarms.

/// The services with a NATS user.
pub const SERVICES: [&str; 4] = ["ingest", "portal", "settlement", "monitor"];

/// `(publish, subscribe)` subjects `service` may use; `None` for a service without a NATS user.
pub fn permissions(service: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    match service {
        "ingest" => Some((&["fc.*.telemetry.>", "$JS.API.>", "$JS.ACK.>"], &["_INBOX.>", "fc.sys.tenancy"])),
        "portal" => Some((&["fc.sys.tenancy"], &["fc.*.telemetry.>", "fc.*.events.alarm", "_INBOX.>"])),
        "settlement" => Some((&[], &["_INBOX.>", "fc.sys.tenancy"])),
        "monitor" => Some((&["fc.*.events.alarm", "$JS.API.>", "$JS.ACK.>"], &["_INBOX.>"])),
        _ => None,
    }
}

fn quoted(list: &[&str]) -> String {
    list.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect::<Vec<_>>().join(", ")
}

/// The nats-server `authorization` block for `users` (`(service, password)`);
/// a user named `admin` gets every subject (for operators and tests).
pub fn authorization_config(users: &[(&str, &str)]) -> String {
    let mut out = String::from("authorization {\n  users = [\n");
    for (user, password) in users {
        let (u, p) = (serde_json::to_string(user).unwrap_or_default(), serde_json::to_string(password).unwrap_or_default());
        match permissions(user) {
            Some((publish, subscribe)) => {
                // An empty allow list would allow everything: a user that publishes nothing is denied all.
                let publish = if publish.is_empty() { r#"deny: [">"]"#.to_string() } else { format!("allow: [{}]", quoted(publish)) };
                out.push_str(&format!(
                    "    {{ user: {u}, password: {p}, permissions: {{ publish: {{ {publish} }}, subscribe: {{ allow: [{}] }} }} }}\n",
                    quoted(subscribe)
                ))
            }
            None => out.push_str(&format!("    {{ user: {u}, password: {p} }}\n")),
        }
    }
    out.push_str("  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_service_gets_only_its_subjects() {
        let text = super::authorization_config(&[("ingest", "pw\"1"), ("portal", "pw2"), ("admin", "pw3")]);
        assert!(
            text.contains(
                r#"{ user: "ingest", password: "pw\"1", permissions: { publish: { allow: ["fc.*.telemetry.>", "$JS.API.>", "$JS.ACK.>"] }"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"{ user: "portal", password: "pw2", permissions: { publish: { allow: ["fc.sys.tenancy"] }"#), "{text}");
        assert!(text.contains(r#"{ user: "admin", password: "pw3" }"#), "{text}");
        assert!(super::permissions("energy").is_none(), "a service without a user yet");
        let (publish, subscribe) = super::permissions("monitor").expect("the monitor has a user");
        assert_eq!((publish[0], subscribe), ("fc.*.events.alarm", &["_INBOX.>"][..]), "it announces alarms, reads nothing off core NATS");
        let text = super::authorization_config(&[("settlement", "pw4")]);
        assert!(text.contains(r#"publish: { deny: [">"] }, subscribe: { allow: ["_INBOX.>", "fc.sys.tenancy"] }"#), "{text}");
    }
}
