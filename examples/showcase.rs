//! The seed's e-commerce scenario on riverbed's `EventBus`.
//!
//! Services publish what happened (a user registered, an order was placed, a payment
//! went through, stock moved, a report was built) and other parts of the shop react:
//!
//! * an **email** handler, one event at a time, in publish order;
//! * a **fulfilment** handler that packs up to four orders at once and rejects a bad
//!   order with an error, which the bus counts and isolates;
//! * a **dashboard** subscriber that keeps only the newest events (`DropOldest`) and is
//!   told exactly how many it missed;
//! * an **audit** subscriber that joins late and replays the history from the first
//!   event with `subscribe_from(0, ..)`, then continues live with no gap.
//!
//! Then the bus is closed, every flow drains and ends, and the statistics are printed as
//! JSON. Run it with `cargo run --release --example showcase`; it needs no cargo feature.

use std::collections::BTreeMap;
use std::error::Error;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use riverbed::BoxError;
use riverbed::bus::{Event, EventBus, Filter, Overflow, SubscribeOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The seed's `EventType`, as a Rust enum. Kinds only need `Clone + Eq + Hash + Debug`;
/// serde lets them appear by name in envelopes and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum EventType {
    UserRegistered,
    OrderPlaced,
    PaymentProcessed,
    InventoryUpdated,
    DataProcessed,
}

use EventType::*;

/// What the fulfilment handler reads out of an `OrderPlaced` payload.
#[derive(Debug, Deserialize)]
struct Order {
    order_id: u64,
    items: Vec<Line>,
}

#[derive(Debug, Deserialize)]
struct Line {
    sku: String,
    qty: u32,
}

type Bus = EventBus<Value, EventType>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    println!("riverbed showcase: an e-commerce event bus\n");

    // Keep the last 100 events for late subscribers and `history()`.
    let bus: Bus = EventBus::builder().history(100).build();

    // Email: sequential (the default concurrency of 1), so mails go out in publish order.
    println!("email handler (one event at a time, in publish order):");
    let email = bus
        .on(
            Filter::kinds([UserRegistered, PaymentProcessed]),
            |event| async move {
                match event.kind {
                    UserRegistered => {
                        println!("  welcome mail to {}", text(&event.payload["email"]))
                    }
                    _ => println!(
                        "  receipt for order {}: {}",
                        event.payload["order_id"],
                        euros(&event.payload["amount_cents"])
                    ),
                }
            },
        )
        .name("email");

    // Fulfilment: up to four orders are packed at once; a bad order is an error.
    let packed = Arc::new(Mutex::new(BTreeMap::new()));
    let fulfilment = bus
        .on(Filter::kind(OrderPlaced), {
            let packed = Arc::clone(&packed);
            move |event| {
                let packed = Arc::clone(&packed);
                async move {
                    let order: Order = serde_json::from_value(event.payload.clone())?;
                    if order.items.is_empty() {
                        return Err::<(), BoxError>(
                            format!("order {} has no items", order.order_id).into(),
                        );
                    }
                    // Stands in for a call to the warehouse system.
                    tokio::time::sleep(Duration::from_millis(10 * order.items.len() as u64)).await;
                    let lines: Vec<String> = order
                        .items
                        .iter()
                        .map(|line| format!("{} x{}", line.sku, line.qty))
                        .collect();
                    packed
                        .lock()
                        .unwrap()
                        .insert(order.order_id, lines.join(", "));
                    Ok(())
                }
            }
        })
        .name("fulfilment")
        .concurrency(4);

    // The handlers subscribed when `on` was called; spawning them now loses nothing.
    let email = tokio::spawn(email.into_future());
    let fulfilment = tokio::spawn(fulfilment.into_future());

    // A dashboard that only cares about the newest events: room for 4, oldest dropped.
    // It is read only at the end, so it falls behind on purpose.
    let mut dashboard = bus.subscribe_with(
        Filter::all(),
        SubscribeOptions::new()
            .capacity(4)
            .overflow(Overflow::DropOldest),
    )?;

    // The seed's `AsyncEvent {event_id, event_type, timestamp, data, source}`: the bus
    // assigns the id, sequence number and timestamp; the publisher gives the rest.
    let early = [
        Event::new(
            UserRegistered,
            json!({"user_id": "u-1", "email": "alice@example.com"}),
        )
        .source("accounts"),
        Event::new(
            UserRegistered,
            json!({"user_id": "u-2", "email": "bob@example.com"}),
        )
        .source("accounts"),
        Event::new(
            OrderPlaced,
            json!({"order_id": 1001, "user_id": "u-1",
                   "items": [{"sku": "mug", "qty": 2}]}),
        )
        .source("checkout"),
        Event::new(
            OrderPlaced,
            json!({"order_id": 1002, "user_id": "u-2",
                   "items": [{"sku": "tee", "qty": 1}, {"sku": "cap", "qty": 1}]}),
        )
        .source("checkout"),
        // A bad order: the fulfilment handler rejects it.
        Event::new(
            OrderPlaced,
            json!({"order_id": 1003, "user_id": "u-2", "items": []}),
        )
        .source("checkout"),
    ];
    for event in early {
        bus.publish(event).await?;
    }

    // An auditor joins late: it replays the history from seq 0, then continues live.
    let audit = bus.subscribe_from(0, Filter::all())?;

    let late = [
        Event::new(
            PaymentProcessed,
            json!({"order_id": 1001, "amount_cents": 2400}),
        )
        .source("payments"),
        Event::new(
            PaymentProcessed,
            json!({"order_id": 1002, "amount_cents": 4150}),
        )
        .source("payments"),
        Event::new(
            InventoryUpdated,
            json!({"sku": "mug", "delta": -2, "on_hand": 18}),
        )
        .source("warehouse"),
        // The seed's own example event.
        Event::new(DataProcessed, json!({"processed": true})).source("system"),
    ];
    for event in late {
        bus.publish(event).await?;
    }

    // Closing ends every stream once it has received what was sent to it; the handler
    // flows finish their events and return.
    bus.close();
    for flow in [email, fulfilment] {
        let report = flow.await?;
        assert!(
            report.is_finished(),
            "a handler flow ends when the bus closes"
        );
    }

    let stats = bus.stats();

    println!("\nfulfilment handler (up to 4 orders at once):");
    for (order, lines) in packed.lock().unwrap().iter() {
        println!("  order {order} packed: {lines}");
    }
    for failure in &stats.handlers[1].recent_failures {
        println!(
            "  event ({}) failed, isolated: {} (the bus and other handlers went on)",
            failure.item, failure.message
        );
    }

    println!("\ndashboard (capacity 4, DropOldest, read only now):");
    while let Some(item) = dashboard.next().await {
        match item {
            Ok(event) => println!("  #{} {:?}", event.seq, event.kind),
            Err(lagged) => println!("  lagged: missed {} events", lagged.missed),
        }
    }

    println!("\naudit (joined after #4, subscribe_from(0): replay, then live):");
    let audited: Vec<_> = audit.collect().await;
    for item in &audited {
        let event = item.as_ref().expect("a Block subscriber never lags");
        let source = event.source.as_deref().unwrap_or("-");
        println!(
            "  #{} {:<16} {:<9} {}",
            event.seq,
            format!("{:?}", event.kind),
            source,
            event.payload
        );
    }

    // Envelopes serialise as the seed's AsyncEvent did (id and timestamp vary per run).
    if let Some(Ok(last)) = audited.last() {
        println!(
            "\nlast envelope as JSON:\n  {}",
            serde_json::to_string(last)?
        );
    }

    // Drop the subscriptions so the statistics show every subscriber gone.
    drop((dashboard, audited));
    println!("\nbus.stats():");
    println!("{}", serde_json::to_string_pretty(&bus.stats())?);
    Ok(())
}

/// Formats a JSON number of cents as euros.
fn euros(cents: &Value) -> String {
    let cents = cents.as_u64().unwrap_or(0);
    format!("{}.{:02} EUR", cents / 100, cents % 100)
}

/// A JSON string's text, without the quotes `Value`'s `Display` adds.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}
