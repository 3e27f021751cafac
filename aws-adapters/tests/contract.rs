//! One contract for HQ's ports, run against both adapter sets: the embedded
//! store and SNS engine (always), and the AWS adapters against a moto server
//! this test starts on a free loopback port. Same checks, same assertions.
//!
//! Also here (one test binary, so the suite links once): the AWS-only
//! behaviours — bootstrap idempotence, API keys on the usage plan, retries on
//! throttling, and clear errors for a missing table.

#[path = "support/moto.rs"]
mod moto;
#[path = "support/receiver.rs"]
mod receiver;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_adapters::bootstrap::{bootstrap, BootstrapOptions};
use aws_adapters::{AwsAdapters, AwsConfig, Clients, TableNames};
use hq_core::clock::{minute_of, now_millis};
use hq_core::domain::{
    Amounts, Endpoint, EndpointPolicy, Fulfillment, KeyRecord, Rate, RatePatch, SubscriptionStatus,
    TopicName, UserRecord, Username,
};
use hq_core::ports::{
    BusError, KeyGateway, OrderBus, Session, SubscriptionFilter, Versioned, Written,
};
use hq_core::Ports;

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn record(name: &str) -> UserRecord {
    UserRecord {
        username: user(name),
        password_hash: "$argon2id$fake".into(),
        created_at: 1_700_000_000_000,
        key: None,
    }
}

fn fulfillment(name: &str, key: &KeyRecord, at: i64, iridium: u32, magnesite: u32) -> Fulfillment {
    Fulfillment {
        id: uuid::Uuid::now_v7(),
        username: user(name),
        key_id: key.id.clone(),
        at,
        amounts: Amounts { iridium, magnesite },
        request_id: uuid::Uuid::new_v4().to_string(),
        trace_id: Some("Root=1-abc".into()),
    }
}

// ---- the contract -------------------------------------------------------------

/// Every check, in order. `tag` keeps usernames apart between runs.
async fn port_contract(ports: &Ports, tag: &str) {
    accounts_and_signup_race(ports, tag).await;
    keys_compare_and_set(ports, tag).await;
    sessions(ports, tag).await;
    ledger_and_totals(ports, tag).await;
    rates(ports).await;
    reset(ports, tag).await;
}

async fn accounts_and_signup_race(p: &Ports, tag: &str) {
    let ann = format!("{tag}-ann");
    assert_eq!(
        p.accounts.create_user(&record(&ann)).await.unwrap(),
        Written::Done
    );
    assert_eq!(
        p.accounts.create_user(&record(&ann)).await.unwrap(),
        Written::Conflict
    );
    let got = p
        .accounts
        .get_user(&user(&ann))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (
            got.username.as_str(),
            got.password_hash.as_str(),
            got.created_at
        ),
        (ann.as_str(), "$argon2id$fake", 1_700_000_000_000)
    );
    assert!(got.key.is_none());
    assert!(p
        .accounts
        .get_user(&user(&format!("{tag}-nobody")))
        .await
        .unwrap()
        .is_none());

    // Ten sign-ups of one name at once: exactly one wins.
    let race = format!("{tag}-race");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (accounts, r) = (p.accounts.clone(), record(&race));
        tasks.spawn(async move { accounts.create_user(&r).await.unwrap() });
    }
    let outcomes = tasks.join_all().await;
    assert_eq!(
        outcomes.iter().filter(|w| **w == Written::Done).count(),
        1,
        "{outcomes:?}"
    );

    let names: Vec<String> = p
        .accounts
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username.to_string())
        .collect();
    assert!(names.contains(&ann) && names.contains(&race), "{names:?}");
}

async fn keys_compare_and_set(p: &Ports, tag: &str) {
    let name = format!("{tag}-keys");
    let u = user(&name);
    p.accounts.create_user(&record(&name)).await.unwrap();
    let first = KeyRecord::issue(now_millis());

    // Issue: only when there is no key yet, and only one of many racers.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (accounts, u) = (p.accounts.clone(), u.clone());
        let k = if i == 0 {
            first.clone()
        } else {
            KeyRecord::issue(now_millis())
        };
        tasks.spawn(async move { (accounts.set_key(&u, None, &k).await.unwrap(), k) });
    }
    let outcomes = tasks.join_all().await;
    let winners: Vec<&KeyRecord> = outcomes
        .iter()
        .filter(|(w, _)| *w == Written::Done)
        .map(|(_, k)| k)
        .collect();
    assert_eq!(winners.len(), 1);
    let issued = winners[0].clone();
    assert_eq!(
        p.accounts
            .set_key(&u, None, &KeyRecord::issue(now_millis()))
            .await
            .unwrap(),
        Written::Conflict
    );
    let (owner, found) = p
        .accounts
        .find_key(issued.value.expose())
        .await
        .unwrap()
        .expect("key resolves");
    assert_eq!(
        (owner, &found.id, found.expires_at, found.revoked),
        (u.clone(), &issued.id, issued.expires_at, false)
    );
    for (_, k) in outcomes.iter().filter(|(w, _)| *w == Written::Conflict) {
        assert!(
            p.accounts
                .find_key(k.value.expose())
                .await
                .unwrap()
                .is_none(),
            "a losing key resolves"
        );
    }

    // Rotate: compare-and-set on the current id; the old value stops resolving.
    let wrong = KeyRecord::issue(now_millis());
    assert_eq!(
        p.accounts
            .set_key(&u, Some(&wrong.id), &KeyRecord::issue(now_millis()))
            .await
            .unwrap(),
        Written::Conflict
    );
    let rotated = KeyRecord::issue(now_millis());
    assert_eq!(
        p.accounts
            .set_key(&u, Some(&issued.id), &rotated)
            .await
            .unwrap(),
        Written::Done
    );
    assert!(p
        .accounts
        .find_key(issued.value.expose())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        p.accounts
            .find_key(rotated.value.expose())
            .await
            .unwrap()
            .expect("new key")
            .1
            .id,
        rotated.id
    );
    assert_eq!(
        p.accounts
            .get_user(&u)
            .await
            .unwrap()
            .unwrap()
            .key
            .unwrap()
            .id,
        rotated.id
    );

    // Revoke: same value, marked revoked; it still resolves, as revoked.
    let revoked = KeyRecord {
        revoked: true,
        ..rotated.clone()
    };
    assert_eq!(
        p.accounts
            .set_key(&u, Some(&rotated.id), &revoked)
            .await
            .unwrap(),
        Written::Done
    );
    assert!(
        p.accounts
            .find_key(rotated.value.expose())
            .await
            .unwrap()
            .expect("revoked key")
            .1
            .revoked
    );

    // No such user: nothing to compare with.
    assert_eq!(
        p.accounts
            .set_key(
                &user(&format!("{tag}-ghost")),
                None,
                &KeyRecord::issue(now_millis())
            )
            .await
            .unwrap(),
        Written::Conflict
    );
    assert!(p
        .accounts
        .find_key("no-such-key-value-0123456789")
        .await
        .unwrap()
        .is_none());
}

async fn sessions(p: &Ports, tag: &str) {
    let digest: [u8; 32] = rand::random();
    let s = Session {
        username: user(&format!("{tag}-ann")),
        expires_at: now_millis() + 60_000,
    };
    assert!(p.accounts.get_session(&digest).await.unwrap().is_none());
    p.accounts.put_session(&digest, &s).await.unwrap();
    let got = p
        .accounts
        .get_session(&digest)
        .await
        .unwrap()
        .expect("session");
    assert_eq!(
        (got.username, got.expires_at),
        (s.username.clone(), s.expires_at)
    );
    p.accounts.delete_session(&digest).await.unwrap();
    assert!(p.accounts.get_session(&digest).await.unwrap().is_none());
    p.accounts.delete_session(&digest).await.unwrap();
}

async fn ledger_and_totals(p: &Ports, tag: &str) {
    let (a, b) = (format!("{tag}-fa"), format!("{tag}-fb"));
    let key = KeyRecord::issue(now_millis());
    let before = p.ledger.count().await.unwrap();
    let now = now_millis();
    // 12 for a (concurrently: counters must not lose updates), 3 for b.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12u32 {
        let (ledger, f) = (p.ledger.clone(), fulfillment(&a, &key, now, 1, i % 2));
        tasks.spawn(async move { ledger.record(f).await.map(|_| ()) });
    }
    for _ in 0..3 {
        let (ledger, f) = (p.ledger.clone(), fulfillment(&b, &key, now - 120_000, 0, 5));
        tasks.spawn(async move { ledger.record(f).await.map(|_| ()) });
    }
    for r in tasks.join_all().await {
        r.expect("recorded");
    }
    assert_eq!(p.ledger.count().await.unwrap(), before + 15);

    let mut one = fulfillment(&b, &key, now, 7, 0);
    one.id = p.ledger.record(one.clone()).await.unwrap();
    assert_eq!(p.ledger.get(one.id).await.unwrap(), Some(one.clone()));
    assert_eq!(p.ledger.get(uuid::Uuid::now_v7()).await.unwrap(), None);

    // Listing: id order, paged by `after`.
    let all = p.ledger.list(None, 10_000).await.unwrap();
    assert_eq!(all.len() as u64, before + 16);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let page = p.ledger.list(Some(all[2].id), 3).await.unwrap();
    assert_eq!(
        page.iter().map(|f| f.id).collect::<Vec<_>>(),
        all[3..6].iter().map(|f| f.id).collect::<Vec<_>>()
    );

    let totals = p.ledger.totals().await.unwrap();
    let ta = totals
        .iter()
        .find(|t| t.username.as_str() == a)
        .expect("a's totals");
    assert_eq!(
        (ta.total, ta.iridium, ta.magnesite, ta.last_fulfilled_at),
        (12, 12, 6, Some(now))
    );
    assert_eq!(ta.per_minute(now)[59], 12);
    let tb = totals
        .iter()
        .find(|t| t.username.as_str() == b)
        .expect("b's totals");
    assert_eq!((tb.total, tb.iridium, tb.magnesite), (4, 7, 15));
    let pm = tb.per_minute(now);
    assert_eq!((pm[59], pm[57], pm.iter().sum::<u32>()), (1, 3, 4));
    assert_eq!(
        tb.minutes.iter().map(|(m, _)| *m).max(),
        Some(minute_of(now))
    );
}

async fn rates(p: &Ports) {
    let mut before = p.rates.rates().await.unwrap();
    before.retain(|(t, _)| *t == TopicName::Magnesite);
    assert!(before.is_empty(), "no magnesite rate before one is set");
    let r = Rate {
        rate_per_minute: 7.5,
        paused: true,
        malformed_share: 0.25,
    };
    p.rates.put_rate(TopicName::Magnesite, &r).await.unwrap();
    let r2 = Rate {
        rate_per_minute: 3.0,
        ..r
    };
    p.rates.put_rate(TopicName::Magnesite, &r2).await.unwrap();
    let got = p.rates.rates().await.unwrap();
    assert_eq!(
        got.iter()
            .filter(|(t, _)| *t == TopicName::Magnesite)
            .collect::<Vec<_>>(),
        vec![&(TopicName::Magnesite, r2)]
    );

    // A patch changes the fields given and keeps the others (the defaults,
    // for a topic never set), and answers what is stored.
    let iridium = |rates: Vec<(TopicName, Rate)>| {
        rates
            .into_iter()
            .find(|(t, _)| *t == TopicName::Iridium)
            .map(|(_, r)| r)
    };
    assert_eq!(iridium(p.rates.rates().await.unwrap()), None);
    let share = RatePatch {
        malformed_share: Some(0.5),
        ..RatePatch::default()
    };
    let patched = p.rates.patch_rate(TopicName::Iridium, share).await.unwrap();
    assert_eq!(
        patched,
        Rate {
            malformed_share: 0.5,
            ..Rate::default()
        }
    );
    let faster = RatePatch {
        rate_per_minute: Some(90.0),
        ..RatePatch::default()
    };
    let patched = p
        .rates
        .patch_rate(TopicName::Iridium, faster)
        .await
        .unwrap();
    assert_eq!(
        (patched.rate_per_minute, patched.malformed_share),
        (90.0, 0.5)
    );
    assert_eq!(iridium(p.rates.rates().await.unwrap()), Some(patched));
}

async fn reset(p: &Ports, tag: &str) {
    p.ledger.clear().await.unwrap();
    assert_eq!(p.ledger.count().await.unwrap(), 0);
    assert!(p.ledger.totals().await.unwrap().is_empty());
    p.accounts.clear_accounts().await.unwrap();
    assert!(p.accounts.list_users().await.unwrap().is_empty());
    assert!(p
        .accounts
        .get_user(&user(&format!("{tag}-ann")))
        .await
        .unwrap()
        .is_none());
}

/// The order bus: subscribe (idempotent), find, list by owner and topic,
/// publish, publish batch (at most 10), unsubscribe.
async fn bus_contract(bus: &dyn OrderBus, endpoint_url: &str) {
    let owner = user("bus-owner");
    let endpoint = Endpoint::resolve(
        endpoint_url,
        EndpointPolicy {
            allow_private: true,
        },
    )
    .await
    .unwrap();
    let sub = bus
        .subscribe(TopicName::Iridium, &endpoint, Some(&owner))
        .await
        .unwrap();
    assert_eq!(sub.topic_arn, bus.topic_arn(TopicName::Iridium));
    assert_eq!(
        (sub.endpoint.as_str(), sub.owner.as_ref()),
        (endpoint_url, Some(&owner))
    );
    assert!(sub.subscription_arn.ends_with(&sub.id));
    let again = bus
        .subscribe(TopicName::Iridium, &endpoint, Some(&owner))
        .await
        .unwrap();
    assert_eq!(again.subscription_arn, sub.subscription_arn);

    for key in [sub.id.as_str(), sub.subscription_arn.as_str()] {
        let found = bus
            .subscription(key)
            .await
            .unwrap()
            .expect("found by id and by ARN");
        assert_eq!(found.subscription_arn, sub.subscription_arn);
        assert!(matches!(
            found.status,
            SubscriptionStatus::PendingConfirmation | SubscriptionStatus::Confirmed
        ));
    }
    let mine = bus
        .list_subscriptions(SubscriptionFilter::Owner(&owner))
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|s| &s.subscription_arn).collect::<Vec<_>>(),
        vec![&sub.subscription_arn]
    );
    assert!(bus
        .list_subscriptions(SubscriptionFilter::Owner(&user("someone-else")))
        .await
        .unwrap()
        .is_empty());
    let on_topic = bus
        .list_subscriptions(SubscriptionFilter::Topic(TopicName::Iridium))
        .await
        .unwrap();
    assert!(on_topic
        .iter()
        .any(|s| s.subscription_arn == sub.subscription_arn));
    assert!(!bus
        .list_subscriptions(SubscriptionFilter::Topic(TopicName::Magnesite))
        .await
        .unwrap()
        .iter()
        .any(|s| s.subscription_arn == sub.subscription_arn));

    assert!(!bus
        .publish(TopicName::Iridium, TopicName::Iridium.order_message())
        .await
        .unwrap()
        .is_empty());
    let batch: Vec<String> = (0..3)
        .map(|_| TopicName::Orders.order_message().to_owned())
        .collect();
    let ids = bus.publish_batch(TopicName::Orders, &batch).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| !i.is_empty()));
    let eleven: Vec<String> = (0..11).map(|_| "x".to_owned()).collect();
    assert!(matches!(
        bus.publish_batch(TopicName::Orders, &eleven).await,
        Err(BusError::Invalid(_))
    ));

    bus.unsubscribe(&sub.subscription_arn).await.unwrap();
    assert!(bus.subscription(&sub.id).await.unwrap().is_none());
    assert!(matches!(
        bus.unsubscribe(&sub.subscription_arn).await,
        Err(BusError::NotFound(_))
    ));
}

// ---- the two adapter sets ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_adapters_pass_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(embedded_store::EmbeddedStore::open(dir.path()).unwrap());
    let ports = Ports {
        accounts: store.clone(),
        ledger: store.clone(),
        rates: store.clone(),
        gateway: Arc::new(hq_core::ports::NoGateway),
        lab: None,
    };
    port_contract(&ports, "emb").await;

    let receiver = receiver::Receiver::start("/order/").await;
    let mut config = sns_engine::EngineConfig::new("http://127.0.0.1:9", dir.path().join("sns"));
    config.endpoint_policy = EndpointPolicy {
        allow_private: true,
    };
    let engine = sns_engine::SnsEngine::start(config, store.clone())
        .await
        .unwrap();
    bus_contract(engine.as_ref(), &receiver.url).await;
    engine.shutdown().await;
    store.close().await;
}

async fn aws_set(moto: &moto::Moto, prefix: &str) -> (Clients, AwsConfig) {
    let sdk = aws_adapters::sdk_config_for_endpoint(&moto.endpoint, "us-west-2").await;
    let clients = Clients::new(&sdk);
    let opts = BootstrapOptions {
        tables: TableNames::prefixed(prefix),
        ..BootstrapOptions::default()
    };
    let config = bootstrap(&clients, &opts).await.expect("bootstrap");
    (clients, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_adapters_pass_the_port_contract() {
    let moto = moto::Moto::start().await;
    let (clients, config) = aws_set(&moto, "contract").await;

    // Bootstrap again: same resources, same answer.
    let again = bootstrap(
        &clients,
        &BootstrapOptions {
            tables: TableNames::prefixed("contract"),
            ..BootstrapOptions::default()
        },
    )
    .await
    .expect("second bootstrap");
    assert_eq!(again, config);
    let tables = clients.dynamodb.list_tables().send().await.unwrap();
    assert_eq!(
        tables
            .table_names()
            .iter()
            .filter(|t| t.starts_with("contract-"))
            .count(),
        8
    );
    for (topic, arn) in &config.topics {
        aws_adapters::config::check_topic_arn(*topic, arn).unwrap();
    }

    let adapters = AwsAdapters::new(&clients, config.clone());
    port_contract(&adapters.ports(), "aws").await;
    lab_faults_are_shared(&adapters, &clients.dynamodb).await;
    rate_patches_do_not_undo_each_other(&adapters).await;

    let receiver = receiver::Receiver::start("/order/").await;
    bus_contract(adapters.bus.as_ref(), &receiver.url).await;
    // moto delivers notifications of confirmed subscriptions synchronously.
    let bodies = receiver.bodies();
    assert!(bodies.iter().any(|b| b.contains("iridium")), "{bodies:?}");

    // API keys: enable puts HQ's value on the usage plan; disable takes it off.
    let plan = config.usage_plan_id.clone().expect("usage plan");
    let owner = user("gw-owner");
    let key = KeyRecord::issue(now_millis());
    adapters.gateway.enable(&owner, &key).await.unwrap();
    adapters.gateway.enable(&owner, &key).await.unwrap(); // idempotent
    let on_plan = clients
        .apigateway
        .get_usage_plan_keys()
        .usage_plan_id(&plan)
        .send()
        .await
        .unwrap();
    let values: Vec<&str> = on_plan.items().iter().filter_map(|k| k.value()).collect();
    assert_eq!(
        values.iter().filter(|v| **v == key.value.expose()).count(),
        1,
        "{values:?}"
    );
    adapters.gateway.disable(&owner, &key).await.unwrap();
    assert!(adapters.gateway.find(&owner, &key).await.unwrap().is_none());
    let on_plan = clients
        .apigateway
        .get_usage_plan_keys()
        .usage_plan_id(&plan)
        .send()
        .await
        .unwrap();
    assert!(
        !on_plan
            .items()
            .iter()
            .any(|k| k.value() == Some(key.value.expose())),
        "off the plan"
    );
    adapters.gateway.disable(&owner, &key).await.unwrap(); // nothing left: fine
}

/// Patches of different fields of one topic, sent at once as two portal
/// instances would: each is one `UpdateItem` of its own field, so both hold
/// however they interleave (the embedded store's default read-then-write
/// relies on `RateService` taking turns instead).
async fn rate_patches_do_not_undo_each_other(adapters: &AwsAdapters) {
    use hq_core::ports::RateStore;
    for round in 0..5 {
        let rate = f64::from(round) + 1.0;
        let share = f64::from(round) / 10.0;
        let (a, b, c) = tokio::join!(
            adapters.store.patch_rate(
                TopicName::Orders,
                RatePatch {
                    rate_per_minute: Some(rate),
                    ..RatePatch::default()
                }
            ),
            adapters.store.patch_rate(
                TopicName::Orders,
                RatePatch {
                    malformed_share: Some(share),
                    ..RatePatch::default()
                }
            ),
            adapters.store.patch_rate(
                TopicName::Orders,
                RatePatch {
                    paused: Some(round % 2 == 0),
                    ..RatePatch::default()
                }
            ),
        );
        let (_, _, _) = (a.unwrap(), b.unwrap(), c.unwrap());
        let stored = adapters
            .store
            .rates()
            .await
            .unwrap()
            .into_iter()
            .find(|(t, _)| *t == TopicName::Orders)
            .unwrap()
            .1;
        assert_eq!(
            stored,
            Rate {
                rate_per_minute: rate,
                paused: round % 2 == 0,
                malformed_share: share,
            },
            "round {round}"
        );
    }
}

/// The lab faults round-trip through the rates table without becoming a rate.
async fn lab_faults_are_shared(adapters: &AwsAdapters, dynamodb: &aws_sdk_dynamodb::Client) {
    use hq_core::ports::RateStore;
    use hq_core::services::ReceivingFaults;
    let lab = adapters
        .ports()
        .lab
        .expect("the AWS mode shares the lab faults");
    let rates_before = adapters.store.rates().await.unwrap();
    assert_eq!(
        lab.receiving_faults().await.unwrap(),
        None,
        "never set: none"
    );
    let faults = ReceivingFaults {
        latency_ms: 250,
        latency_random: true,
        error_share: 0.35,
        error_status: 500,
    };
    let at = |value, version| Some(Versioned { value, version });
    assert_eq!(
        lab.put_receiving_faults(&faults, None).await.unwrap(),
        Written::Done
    );
    assert_eq!(lab.receiving_faults().await.unwrap(), at(faults, 1));
    // Conditional on the version: a writer that read an older one (or none)
    // writes nothing.
    let off = ReceivingFaults::default();
    for stale in [None, Some(0), Some(2)] {
        assert_eq!(
            lab.put_receiving_faults(&off, stale).await.unwrap(),
            Written::Conflict,
            "{stale:?}"
        );
    }
    assert_eq!(lab.receiving_faults().await.unwrap(), at(faults, 1));
    assert_eq!(
        lab.put_receiving_faults(&off, Some(1)).await.unwrap(),
        Written::Done
    );
    assert_eq!(lab.receiving_faults().await.unwrap(), at(off, 2));
    assert_eq!(adapters.store.rates().await.unwrap(), rates_before);

    // An item stored before versions existed reads as version 0, and a write
    // expecting 0 replaces it.
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let n = |v: &str| Av::N(v.into());
    dynamodb
        .put_item()
        .table_name("contract-rates")
        .item("topic", Av::S("lab:receiving".into()))
        .item("latencyMs", n("40"))
        .item("latencyRandom", Av::Bool(false))
        .item("errorShare", n("0"))
        .item("errorStatus", n("503"))
        .send()
        .await
        .unwrap();
    let legacy = ReceivingFaults {
        latency_ms: 40,
        ..ReceivingFaults::default()
    };
    assert_eq!(lab.receiving_faults().await.unwrap(), at(legacy, 0));
    assert_eq!(
        lab.put_receiving_faults(&off, Some(0)).await.unwrap(),
        Written::Done
    );
    assert_eq!(lab.receiving_faults().await.unwrap(), at(off, 1));
    assert_eq!(
        lab.put_receiving_faults(&off, Some(0)).await.unwrap(),
        Written::Conflict,
        "versioned now"
    );

    // Surges: stored, listed in start order, deleted; still no rate.
    let surge = |id: &str, topic, starts_at| hq_core::domain::SurgeRecord {
        id: id.into(),
        topic,
        starts_at,
        count: 500,
        seconds: 60,
    };
    assert!(lab.surges().await.unwrap().is_empty());
    let later = surge("b", TopicName::Iridium, 2_000);
    let sooner = surge("a", TopicName::Orders, 1_000);
    lab.put_surge(&later).await.unwrap();
    lab.put_surge(&sooner).await.unwrap();
    assert_eq!(lab.surges().await.unwrap(), [sooner.clone(), later.clone()]);
    lab.delete_surge(&sooner).await.unwrap();
    assert_eq!(lab.surges().await.unwrap(), std::slice::from_ref(&later));
    assert_eq!(lab.receiving_faults().await.unwrap(), at(off, 1));
    assert_eq!(adapters.store.rates().await.unwrap(), rates_before);
    lab.delete_surge(&later).await.unwrap();
}

#[tokio::test]
async fn a_missing_table_is_a_clear_error_not_a_panic() {
    let moto = moto::Moto::start().await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&moto.endpoint, "us-west-2").await;
    let store = aws_adapters::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        TableNames::prefixed("absent"),
    );
    use hq_core::ports::{AccountStore, Ledger};
    let e = store.get_user(&user("ann")).await.unwrap_err().to_string();
    assert!(
        e.contains("absent-users") && e.contains("ResourceNotFoundException"),
        "{e}"
    );
    let f = fulfillment("ann", &KeyRecord::issue(0), now_millis(), 1, 1);
    let e = store.record(f).await.unwrap_err().to_string();
    assert!(
        e.contains("TransactWriteItems") && e.contains("absent-fulfillments"),
        "{e}"
    );
}

// ---- throttling, against a scripted stand-in for AWS ----------------------------------

/// Answers each request with the next scripted (status, content type, body),
/// repeating the last one; counts requests by their `X-Amz-Target` or path.
async fn scripted(script: Vec<(u16, &'static str, String)>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let script = Arc::new(script);
    let app = axum::Router::new().fallback(move || {
        let (hits, script) = (counted.clone(), script.clone());
        async move {
            let i = hits.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
            let (status, ctype, body) = script[i].clone();
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", ctype)],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (url, hits)
}

#[tokio::test]
async fn create_api_key_is_retried_with_backoff_when_api_gateway_throttles() {
    let throttled = (
        429,
        "application/json",
        r#"{"message":"Too Many Requests"}"#.to_owned(),
    );
    let created = (
        201,
        "application/json",
        r#"{"id":"k1","name":"hq-ann-key","enabled":true}"#.to_owned(),
    );
    // Six refusals (more than the SDK's own retries), then the key, then the plan key.
    let mut script: Vec<_> = std::iter::repeat_n(throttled, 6).collect();
    script.push(created);
    script.push((
        201,
        "application/json",
        r#"{"id":"k1","type":"API_KEY"}"#.to_owned(),
    ));
    let (url, hits) = scripted(script).await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&url, "us-west-2").await;
    let gw = aws_adapters::ApiGatewayKeys::new(
        aws_sdk_apigateway::Client::new(&sdk),
        Some("plan1".into()),
    );
    let started = std::time::Instant::now();
    gw.enable(&user("ann"), &KeyRecord::issue(now_millis()))
        .await
        .expect("a key despite throttling");
    assert_eq!(hits.load(Ordering::SeqCst), 8);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_then_reported_clearly() {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;
    let (url, hits) = scripted(vec![(400, "application/x-amz-json-1.0", body.to_owned())]).await;
    let sdk = aws_adapters::sdk_config_for_endpoint(&url, "us-west-2").await;
    let store = aws_adapters::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        TableNames::prefixed("t"),
    );
    use hq_core::ports::AccountStore;
    let e = store.get_user(&user("ann")).await.unwrap_err().to_string();
    assert!(
        e.contains("ProvisionedThroughputExceeded") && e.contains("t-users"),
        "{e}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        aws_adapters::DEFAULT_MAX_ATTEMPTS as usize,
        "retried, then gave up"
    );
}
