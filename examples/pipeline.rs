//! The seed's e-commerce product pipeline on riverbed's `Pipeline`.
//!
//! A catalogue import arrives as JSON records and goes through three stages:
//!
//! * **validate** (a plain `async fn`): a product without a name or with a price that is
//!   not positive is rejected and dead-lettered; a discontinued one is filtered out.
//! * **inventory** (a `Processor` type with state): looks the stock up in a warehouse.
//!   The lookup of every third SKU times out on its first try, and one warehouse is
//!   offline; the stage retries with exponential backoff on its runtime, then
//!   dead-letters what still fails.
//! * **price** (a closure wrapped in a `timeout`): calls a pricing service, up to four
//!   products at once; the outputs still come out in catalogue order.
//!
//! Every product carries the import's `FlowContext` (the user who started it and the
//! VAT rate) through every stage. At the end the example prints the priced products,
//! the dead letters and the per-stage statistics as JSON.
//!
//! The runtime is a cargo feature choice:
//!
//! ```sh
//! cargo run --example pipeline --features tokio   # TokioRuntime inside #[tokio::main]
//! cargo run --example pipeline --features smol    # SmolRuntime, driven by smol::block_on
//! cargo run --example pipeline                    # VirtualRuntime: no feature needed
//! ```
//!
//! With both features on, tokio is used.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use riverbed::pipeline::{
    DeadLetter, DeadLetterSink, ErrorPolicy, FlowStreamExt, Outcome, Pipeline, Processor,
};
use riverbed::resilience::{Jitter, ProcessorExt, RetryPolicy};
use riverbed::runtime::{RuntimeExt, SharedRuntime};
use riverbed::{BoxError, FlowContext};
use serde::{Deserialize, Serialize};

/// The catalogue feed: twenty records, a few of them bad.
const CATALOGUE: &str = r#"[
  {"sku": "KB-101", "name": "Mechanical keyboard", "price_cents": 8999, "category": "peripherals"},
  {"sku": "MS-102", "name": "Wireless mouse", "price_cents": 2499, "category": "peripherals"},
  {"sku": "MN-103", "name": "27-inch monitor", "price_cents": 21900, "category": "displays"},
  {"sku": "HD-104", "name": "USB-C hub", "price_cents": 3450, "category": "accessories"},
  {"sku": "CB-105", "name": "", "price_cents": 999, "category": "accessories"},
  {"sku": "WC-106", "name": "HD webcam", "price_cents": 5900, "category": "peripherals"},
  {"sku": "HS-107", "name": "Headset", "price_cents": 7400, "category": "audio"},
  {"sku": "SP-108", "name": "Desk speakers", "price_cents": -500, "category": "audio"},
  {"sku": "MP-109", "name": "Mouse pad", "price_cents": 1200, "category": "accessories"},
  {"sku": "LS-110", "name": "Laptop stand", "price_cents": 4100, "category": "accessories"},
  {"sku": "DK-111", "name": "Docking station", "price_cents": 18900, "category": "accessories"},
  {"sku": "MC-112", "name": "Studio microphone", "price_cents": 12900, "category": "audio"},
  {"sku": "TB-113", "name": "Drawing tablet", "price_cents": 9900, "category": "peripherals"},
  {"sku": "PR-114", "name": "Laser printer", "price_cents": 15900, "category": "office", "discontinued": true},
  {"sku": "SS-115", "name": "Portable SSD", "price_cents": 10900, "category": "storage"},
  {"sku": "FD-116", "name": "Flash drive", "price_cents": 0, "category": "storage"},
  {"sku": "CR-117", "name": "Card reader", "price_cents": 1900, "category": "storage"},
  {"sku": "LT-118", "name": "Desk lamp", "price_cents": 3900, "category": "office"},
  {"sku": "CH-119", "name": "Office chair", "price_cents": 24900, "category": "office"},
  {"sku": "UP-120", "name": "UPS battery", "price_cents": 13900, "category": "power"}
]"#;

/// A product as the catalogue feed sends it, not yet checked.
#[derive(Debug, Clone, Deserialize)]
struct ProductRecord {
    sku: String,
    name: String,
    price_cents: i64,
    category: String,
    #[serde(default)]
    discontinued: bool,
}

/// A product that passed validation.
#[derive(Debug, Clone, Serialize)]
struct Product {
    sku: String,
    name: String,
    category: String,
    base_cents: u64,
}

/// A product with its stock.
#[derive(Debug, Clone, Serialize)]
struct Stocked {
    product: Product,
    warehouse: &'static str,
    on_hand: u32,
}

/// What comes out of the pipeline.
#[derive(Debug, Clone, Serialize)]
struct Priced {
    sku: String,
    name: String,
    on_hand: u32,
    /// The shelf price, VAT included, after any clearance discount.
    price_cents: u64,
}

/// Why validation rejected a record.
#[derive(Debug)]
struct Invalid(&'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Invalid {}

/// The seed's `ProductValidationProcessor`. A plain `async fn (item, ctx)` returning
/// `Result<Option<_>, _>` is a processor as it is: `Ok(None)` filters the item out,
/// `Err` goes to the stage's error policy.
async fn validate(record: ProductRecord, _ctx: FlowContext) -> Result<Option<Product>, Invalid> {
    if record.discontinued {
        return Ok(None);
    }
    if record.name.trim().is_empty() {
        return Err(Invalid("the name is empty"));
    }
    let Ok(base_cents @ 1..) = u64::try_from(record.price_cents) else {
        return Err(Invalid("the price is not positive"));
    };
    Ok(Some(Product {
        sku: record.sku,
        name: record.name,
        category: record.category,
        base_cents,
    }))
}

/// The seed's `InventoryEnrichmentProcessor`: a reusable value with state, shared by
/// the items in flight through `&self`.
struct InventoryEnrichment {
    /// Warehouse and stock per category (a stand-in for the warehouse system).
    stock: HashMap<&'static str, (&'static str, u32)>,
    /// A warehouse that does not answer.
    offline: &'static str,
    /// SKUs looked up at least once, to fail only their first lookup.
    looked_up: Mutex<HashSet<String>>,
    rt: SharedRuntime,
}

impl InventoryEnrichment {
    fn new(rt: SharedRuntime) -> Self {
        let stock = HashMap::from([
            ("peripherals", ("leeds", 40)),
            ("displays", ("leeds", 6)),
            ("accessories", ("lyon", 120)),
            ("audio", ("lyon", 15)),
            ("storage", ("lyon", 75)),
            ("office", ("porto", 9)),
            ("power", ("lisbon", 3)),
        ]);
        InventoryEnrichment {
            stock,
            offline: "lisbon",
            looked_up: Mutex::new(HashSet::new()),
            rt,
        }
    }

    /// The lookup itself: every third SKU (by number) fails on its first try.
    fn lookup(&self, product: &Product) -> Result<(&'static str, u32), BoxError> {
        let first_try = self.looked_up.lock().unwrap().insert(product.sku.clone());
        let number: u32 = product.sku[3..].parse()?;
        let (warehouse, on_hand) = self
            .stock
            .get(product.category.as_str())
            .copied()
            .unwrap_or(("none", 0));
        if warehouse == self.offline {
            Err(format!("warehouse {warehouse} is offline").into())
        } else if first_try && number.is_multiple_of(3) {
            Err(format!("warehouse {warehouse} timed out").into())
        } else {
            Ok((warehouse, on_hand))
        }
    }
}

impl Processor<Product> for InventoryEnrichment {
    type Out = Stocked;
    type Future = BoxFuture<'static, Outcome<Stocked>>;

    fn process(&self, product: Product, _ctx: &FlowContext) -> Self::Future {
        let answer = self.lookup(&product);
        let rt = self.rt.clone();
        async move {
            rt.sleep(Duration::from_millis(1)).await; // the round trip
            let (warehouse, on_hand) = answer?;
            Ok(Some(Stocked {
                product,
                warehouse,
                on_hand,
            }))
        }
        .boxed()
    }
}

/// The seed's `PriceCalculationProcessor`, as a closure: asks a (simulated) pricing
/// service, whose answers take 1 to 4 ms, then adds the VAT rate from the context.
fn price(
    rt: SharedRuntime,
) -> impl Fn(Stocked, FlowContext) -> BoxFuture<'static, Result<Option<Priced>, BoxError>>
+ Send
+ Sync
+ 'static {
    move |item: Stocked, ctx: FlowContext| {
        let rt = rt.clone();
        async move {
            let service_time = 1 + item.product.base_cents % 4;
            rt.sleep(Duration::from_millis(service_time)).await;
            let vat_percent: u64 = ctx.attribute("vat_percent").unwrap_or("0").parse()?;
            // Plenty on hand: 10% clearance discount.
            let discount_percent = if item.on_hand >= 100 { 10 } else { 0 };
            let net = item.product.base_cents * (100 - discount_percent) / 100;
            Ok(Some(Priced {
                sku: item.product.sku,
                name: item.product.name,
                on_hand: item.on_hand,
                price_cents: net * (100 + vat_percent) / 100,
            }))
        }
        .boxed()
    }
}

/// Builds the pipeline, feeds the catalogue and prints what came out.
async fn run(rt: SharedRuntime) -> Result<(), BoxError> {
    let records: Vec<ProductRecord> = serde_json::from_str(CATALOGUE)?;

    // Dead letters go to any `Sink`; here, bounded channels drained below.
    let (rejected_tx, rejected_rx) = mpsc::channel::<DeadLetter<ProductRecord>>(8);
    let (unavailable_tx, unavailable_rx) = mpsc::channel::<DeadLetter<Product>>(8);

    let retry = RetryPolicy::exponential(Duration::from_millis(5))
        .max_attempts(3)
        .jitter(Jitter::None); // 5 ms, then 10 ms: the same every run

    let pipeline = Pipeline::<ProductRecord>::new("product_processing")
        .stage_with(validate, |stage| {
            stage
                .name("validate")
                .on_error(ErrorPolicy::dead_letter(DeadLetterSink::new(rejected_tx)))
        })
        .stage_with(InventoryEnrichment::new(rt.clone()), |stage| {
            stage
                .name("inventory")
                .concurrency(2)
                .runtime(&rt) // times the stage and waits between retries
                .on_error(ErrorPolicy::retry(
                    retry,
                    ErrorPolicy::dead_letter(DeadLetterSink::new(unavailable_tx)),
                ))
        })
        .stage_with(
            // A pricing answer slower than 250 ms is an error: the stage's policy
            // (`Fail`, the default) would stop the pipeline with it.
            price(rt.clone()).timeout(Duration::from_millis(250), &rt),
            |stage| stage.name("price").concurrency(4).runtime(&rt),
        );
    let stats = pipeline.stats();
    let (mut input, output) = pipeline.start();

    // One import, one context: who started it and what it needs to know.
    let ctx = FlowContext::new()
        .with_user_id("merchant-42")
        .with_attribute("vat_percent", "20");
    let feed = async move {
        for record in records {
            // Waits while the input is full; fails only if the output was dropped.
            if let Err(stopped) = input.feed(record, ctx.clone()).await {
                println!("not fed: {}", stopped.item.sku);
                break;
            }
        }
        // Dropping the input ends the pipeline once it has drained.
    };
    // Feed, read the output and drain the dead letters together. The dead-letter
    // channels end when the stages holding their senders are dropped.
    let (_, priced, rejected, unavailable) = futures::join!(
        feed,
        output.values().try_collect::<Vec<_>>(),
        rejected_rx.collect::<Vec<_>>(),
        unavailable_rx.collect::<Vec<_>>(),
    );

    println!("priced products (in catalogue order):");
    for product in priced? {
        println!(
            "  {} {:<20} {:>4} on hand  {:>7} EUR",
            product.sku,
            product.name,
            product.on_hand,
            euros(product.price_cents)
        );
    }

    println!("\nrejected by validation (dead letters):");
    for letter in &rejected {
        print_letter(&letter.item.sku, letter);
    }
    println!("\nno stock answer after retries (dead letters):");
    for letter in &unavailable {
        print_letter(&letter.item.sku, letter);
    }

    println!("\npipeline stats:");
    println!("{}", serde_json::to_string_pretty(&stats.snapshot())?);
    Ok(())
}

fn print_letter<T>(sku: &str, letter: &DeadLetter<T>) {
    println!(
        "  {sku} at {:?} after {} attempt(s), user {}: {}",
        letter.stage,
        letter.attempts,
        letter.ctx.user_id().unwrap_or("-"),
        letter.error
    );
}

fn euros(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(feature = "tokio")]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let rt: SharedRuntime = riverbed::runtime::tokio();
    run(rt).await
}

#[cfg(all(feature = "smol", not(feature = "tokio")))]
fn main() -> Result<(), BoxError> {
    let rt: SharedRuntime = riverbed::runtime::smol();
    smol::block_on(run(rt))
}

/// Without a runtime feature, the `VirtualRuntime` drives the example with its own
/// `block_on`: the pipeline's sleeps and retry delays pass on its virtual clock, so
/// `cargo run --example pipeline` works with no feature at all.
#[cfg(not(any(feature = "tokio", feature = "smol")))]
fn main() -> Result<(), BoxError> {
    let clock = riverbed::runtime::VirtualRuntime::new();
    let rt: SharedRuntime = std::sync::Arc::new(clock.clone());
    clock.block_on(run(rt))
}
