//! The seed's reactive scenarios on riverbed's `ReactiveStream`.
//!
//! * **Inventory updates.** Warehouse scans are emitted into `inventory_updates`. An
//!   inventory transformer runs once per update (whatever the number of subscribers):
//!   it drops scans of unknown SKUs and marks low stock. Two subscribers follow the
//!   stream: `update_ui` (prints what a shop page would show) and `update_cache` (keeps
//!   the latest level per SKU). A late dashboard subscribes to a `latest` subject and
//!   gets the current state at once.
//! * **Real-time dashboard.** Page-view events arrive over time on `dashboard_updates`;
//!   the dashboard groups them into one-second windows (`chunks_timeout`) and keeps
//!   running totals (`accumulate`), printing one line per window.
//!
//! The runtime is a cargo feature choice:
//!
//! ```sh
//! cargo run --example reactive --features tokio   # TokioRuntime inside #[tokio::main]
//! cargo run --example reactive --features smol    # SmolRuntime, driven by smol::block_on
//! cargo run --example reactive                    # VirtualRuntime: no feature needed
//! ```
//!
//! With both features on, tokio is used.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use riverbed::BoxError;
use riverbed::reactive::{ReactiveExt, ReactiveStream};
use riverbed::runtime::{RuntimeExt, SharedRuntime};

/// A stock level reported by a warehouse scanner.
#[derive(Debug, Clone)]
struct InventoryUpdate {
    sku: String,
    on_hand: u32,
    low_stock: bool,
}

/// The catalogue the transformer checks scans against: SKU → reorder threshold.
fn catalogue() -> HashMap<&'static str, u32> {
    HashMap::from([
        ("KB-101", 10),
        ("MS-102", 25),
        ("MN-103", 5),
        ("HD-104", 20),
    ])
}

/// The seed's `InventoryTransformer`: drops unknown SKUs, marks low stock.
fn inventory_transformer(
    thresholds: Arc<HashMap<&'static str, u32>>,
) -> impl Fn(InventoryUpdate) -> std::future::Ready<Option<InventoryUpdate>> + Send + Sync + 'static
{
    move |mut update| {
        let checked = thresholds.get(update.sku.as_str()).map(|&threshold| {
            update.low_stock = update.on_hand < threshold;
            update
        });
        std::future::ready(checked)
    }
}

async fn inventory(rt: &SharedRuntime) -> Result<(), BoxError> {
    println!("== inventory updates ==");
    let updates: ReactiveStream<InventoryUpdate> = ReactiveStream::new("inventory_updates");
    updates.add_transformer(inventory_transformer(Arc::new(catalogue())));

    // The current state, for whoever joins later.
    let current: ReactiveStream<BTreeMap<String, u32>> =
        ReactiveStream::latest("inventory_state", BTreeMap::new());

    let update_ui = updates
        .on(|update: InventoryUpdate| async move {
            let badge = if update.low_stock {
                "  (low stock!)"
            } else {
                ""
            };
            println!(
                "  ui: {:<7} {:>3} on hand{badge}",
                update.sku, update.on_hand
            );
        })
        .spawn(rt);
    let cache = Arc::new(Mutex::new(BTreeMap::new()));
    let update_cache = {
        let (cache, current) = (Arc::clone(&cache), current.clone());
        updates
            .on(move |update: InventoryUpdate| {
                let snapshot = {
                    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                    cache.insert(update.sku, update.on_hand);
                    cache.clone()
                };
                let current = current.clone();
                async move { current.emit(snapshot).await }
            })
            .spawn(rt)
    };

    let scans = [
        ("KB-101", 42),
        ("MS-102", 12),
        ("XX-999", 7), // not in the catalogue: the transformer drops it
        ("MN-103", 3),
        ("KB-101", 9),
        ("HD-104", 60),
    ];
    for (sku, on_hand) in scans {
        let update = InventoryUpdate {
            sku: sku.to_string(),
            on_hand,
            low_stock: false,
        };
        updates.emit(update).await?;
    }
    updates.complete()?;
    update_ui.await.map_err(|e| e.to_string())?.into_result()?;
    update_cache
        .await
        .map_err(|e| e.to_string())?
        .into_result()?;

    // A dashboard opened now gets the current state first.
    let mut dashboard = current.subscribe();
    if let Some(Ok(state)) = dashboard.next().await {
        println!("  dashboard opened late, current levels: {state:?}");
    }
    println!(
        "  stats: {}",
        serde_json::to_string(&updates.stats()).unwrap_or_default()
    );
    Ok(())
}

/// A page view as the web front end reports it.
#[derive(Debug, Clone)]
struct PageView {
    page: &'static str,
    millis: u32,
}

/// Totals the dashboard keeps across windows.
#[derive(Debug, Clone, Default)]
struct Totals {
    windows: u32,
    views: u64,
    slow: u64,
    per_page: BTreeMap<&'static str, u64>,
}

async fn dashboard(rt: &SharedRuntime) -> Result<(), BoxError> {
    println!("== real-time dashboard ==");
    let views: ReactiveStream<PageView> = ReactiveStream::new("dashboard_updates");
    // The seed's `AggregateMetricsTransformer`: a timing of 0 ms is a clock glitch,
    // counted as 1 ms.
    views.add_transformer(|view: PageView| async move {
        PageView {
            millis: view.millis.max(1),
            ..view
        }
    });

    let panel = views
        .subscribe()
        .filter_map(|view| std::future::ready(view.ok()))
        .chunks_timeout(1_000, Duration::from_secs(1), rt)
        .accumulate(Totals::default(), |mut totals, window: Vec<PageView>| {
            totals.windows += 1;
            totals.views += window.len() as u64;
            totals.slow += window.iter().filter(|v| v.millis > 300).count() as u64;
            for view in &window {
                *totals.per_page.entry(view.page).or_default() += 1;
            }
            totals
        });
    let printer = rt.spawn(panel.for_each(|totals| {
        println!(
            "  window {}: {} views so far, {} slow, by page {:?}",
            totals.windows, totals.views, totals.slow, totals.per_page
        );
        std::future::ready(())
    }));

    // Three seconds of traffic, a view every 150 ms.
    let pages = ["/", "/cart", "/product/42", "/checkout"];
    for i in 0..20u32 {
        let view = PageView {
            page: pages[i as usize % pages.len()],
            millis: 80 + (i * 37) % 400,
        };
        views.emit(view).await?;
        rt.sleep(Duration::from_millis(150)).await;
    }
    views.complete()?;
    printer.await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn run(rt: SharedRuntime) -> Result<(), BoxError> {
    inventory(&rt).await?;
    dashboard(&rt).await
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

/// Without a runtime feature, the `VirtualRuntime` drives the example: its clock
/// passes the dashboard's seconds at once.
#[cfg(not(any(feature = "tokio", feature = "smol")))]
fn main() -> Result<(), BoxError> {
    let clock = riverbed::runtime::VirtualRuntime::new();
    let rt: SharedRuntime = Arc::new(clock.clone());
    clock.block_on(run(rt))
}
