//! The TELEMETRY stream's limits against a real nats-server: it keeps what a
//! consumer has not acked, refuses new messages when full, and a stream made by
//! an older version is replaced only once nothing in it is still unread.

use async_nats::jetstream::{consumer, stream};
use fc_bus::{Bus, BusConfig, TELEMETRY_STREAM};
use fc_testkit::NatsServer;
use futures::StreamExt;
use std::time::Duration;

fn cfg(url: &str, max_bytes: i64) -> BusConfig {
    BusConfig { url: url.into(), telemetry_max_bytes: max_bytes, ..BusConfig::default() }
}

#[tokio::test]
async fn a_full_stream_refuses_new_messages_and_keeps_every_acked_one() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let bus = Bus::connect(&cfg(&nats.url, 1 << 20)).await?;
    bus.durable_consumer(TELEMETRY_STREAM, "store-writer", None, 1000, Duration::from_secs(30)).await?;
    let payload = bytes::Bytes::from(vec![7u8; 16 * 1024]);
    let mut acked = 0u64;
    let mut refused = 0;
    for i in 0..200 {
        let pending = bus.publish("fc.t1.telemetry.m".into(), &format!("id-{i}"), payload.clone()).await?;
        match pending.wait().await {
            Ok(_) => acked += 1,
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains("maximum bytes"), "{e}");
            }
        }
    }
    assert!(refused > 0 && acked > 10, "{acked} acked, {refused} refused");
    let (_, messages) = bus.stream_backlog(TELEMETRY_STREAM).await?;
    assert_eq!(messages, acked, "nothing acknowledged was discarded to make room");
    Ok(())
}

#[tokio::test]
async fn an_old_stream_is_replaced_only_when_nothing_is_left_unread() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let client = async_nats::connect(&nats.url).await?;
    let js = async_nats::jetstream::new(client);
    // What versions before this one created: limits retention, discard old.
    let old = js
        .create_stream(stream::Config { name: TELEMETRY_STREAM.into(), subjects: vec!["fc.*.telemetry.>".into()], ..Default::default() })
        .await?;
    let c: consumer::PullConsumer = old
        .create_consumer(consumer::pull::Config {
            durable_name: Some("store-writer".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    js.publish("fc.t1.telemetry.m", "unread".into()).await?.await?;
    let err = Bus::connect(&cfg(&nats.url, 1 << 30)).await.err().expect("refused while a message is unread");
    assert!(err.to_string().contains("store-writer"), "{err}");
    // The old writer catches up; then the stream moves to the new retention.
    let mut msgs = c.fetch().max_messages(1).messages().await?;
    msgs.next().await.expect("one message").map_err(|e| anyhow::anyhow!(e))?.double_ack().await.map_err(|e| anyhow::anyhow!(e))?;
    let bus = Bus::connect(&cfg(&nats.url, 1 << 30)).await?;
    let info = bus.jetstream().get_stream(TELEMETRY_STREAM).await?.info().await?.config.clone();
    assert_eq!((info.retention, info.discard), (stream::RetentionPolicy::Interest, stream::DiscardPolicy::New));
    Ok(())
}
