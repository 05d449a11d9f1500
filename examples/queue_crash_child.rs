//! The process that `tests/queue_crash.rs` kills: a producer and a handler flow on the
//! durable queue backend, under load, logging what they did so that the test can check
//! that nothing was lost.
//!
//! ```sh
//! queue_crash_child <store dir> <log file> run <first> <count>    # until killed
//! queue_crash_child <store dir> <log file> drain <first> <count>  # until done
//! ```
//!
//! Both modes open the store, print `ready`, send messages `first..first + count`
//! (numbers, 64 at a time) and run a consumer group with 4 workers. `run` goes on
//! until the process is killed; `drain` stops once the group has nothing left (leases
//! of a killed run included), then writes the group's dead letters and exits.
//!
//! The log (appended, one `write` per line, so a kill never leaves half a line):
//!
//! * `R <a> <b>` before sending `a..b`: those may be sent, even if the process dies
//!   before it logs them;
//! * `S <n>` once `send(n)` returned `Ok` (the message is on disk);
//! * `P <n>` when the handler is called for `n`, before its acknowledgement;
//! * `D <n>` for each dead letter, at the end of `drain`.
//!
//! Messages whose number is a multiple of 997 are poisoned: the handler always fails
//! them, so after 3 attempts (10 ms apart) they go to dead letters.
//!
//! The store commits with `Durability::SyncAll`, or `Relaxed` when the environment
//! variable `RIVERBED_CRASH_DURABILITY` is `relaxed` (a process crash must lose
//! nothing either way).
//!
//! Built with `--features durable`; the runtime is tokio (a dev-dependency), through a
//! small `Runtime` adapter, so no other feature is needed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use riverbed::queue::{Durability, DurableBackend, DurableOptions, MessageQueue, StartFrom};
use riverbed::resilience::RetryPolicy;
use riverbed::runtime::{Runtime, SharedRuntime, Sleep};

/// Handler workers in the consumer group.
const WORKERS: usize = 4;
/// Messages each worker claims (and acknowledges) at once.
const CLAIM_BATCH: usize = 16;
/// Sends in flight at once.
const WINDOW: u64 = 64;
/// A lease left by a killed run comes back this long after it was taken.
/// (Long enough that a slow commit on a busy machine does not expire one by itself.)
const LEASE: Duration = Duration::from_secs(5);
const GROUP: &str = "work";

fn poisoned(n: u64) -> bool {
    n.is_multiple_of(997)
}

/// Spawns and sleeps on a tokio runtime.
#[derive(Debug)]
struct Tokio(tokio::runtime::Handle);

impl Runtime for Tokio {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        drop(self.0.spawn(task));
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let _context = self.0.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The log: one `write` per line.
#[derive(Debug, Clone)]
struct Log(Arc<Mutex<File>>);

impl Log {
    fn line(&self, line: std::fmt::Arguments<'_>) {
        let text = format!("{line}\n");
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(text.as_bytes()).expect("write the log");
    }
}

struct Args {
    dir: PathBuf,
    log: PathBuf,
    drain: bool,
    first: u64,
    count: u64,
}

fn args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: queue_crash_child <dir> <log> run|drain <first> <count>";
    if args.len() != 5 {
        panic!("{usage}");
    }
    let number = |s: &str| s.parse::<u64>().expect(usage);
    Args {
        dir: PathBuf::from(&args[0]),
        log: PathBuf::from(&args[1]),
        drain: match args[2].as_str() {
            "run" => false,
            "drain" => true,
            _ => panic!("{usage}"),
        },
        first: number(&args[3]),
        count: number(&args[4]),
    }
}

fn main() {
    let args = args();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let rt: SharedRuntime = Arc::new(Tokio(tokio_rt.handle().clone()));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .expect("open the log");
    let log = Log(Arc::new(Mutex::new(file)));
    tokio_rt.block_on(run(args, rt, log));
}

async fn run(args: Args, rt: SharedRuntime, log: Log) {
    let durability = match std::env::var("RIVERBED_CRASH_DURABILITY").as_deref() {
        Ok("relaxed") => Durability::Relaxed,
        Ok("sync_all") | Err(_) => Durability::SyncAll,
        Ok(other) => panic!("RIVERBED_CRASH_DURABILITY is sync_all or relaxed, not {other:?}"),
    };
    let options = DurableOptions::new().durability(durability);
    let backend = DurableBackend::open_with(&args.dir, options).expect("open the store");
    let queue: MessageQueue<u64> = MessageQueue::builder("crash", &rt)
        .backend(backend)
        .lease(LEASE)
        .retry(RetryPolicy::constant(Duration::from_millis(10)).max_attempts(3))
        .build();
    queue
        .create_group(GROUP, StartFrom::Earliest)
        .await
        .expect("create the group");
    println!("ready");

    let handler_log = log.clone();
    let consumer = queue
        .consumer(GROUP, move |n: u64| {
            handler_log.line(format_args!("P {n}"));
            async move {
                if poisoned(n) {
                    Err(format!("{n} is poisoned"))
                } else {
                    Ok(())
                }
            }
        })
        .workers(WORKERS)
        .claim_batch(CLAIM_BATCH);
    let stop = consumer.stop_handle();
    let flow = consumer.spawn(&rt);

    let end = args.first + args.count;
    let mut a = args.first;
    while a < end {
        let b = (a + WINDOW).min(end);
        log.line(format_args!("R {a} {b}"));
        let sends = (a..b).map(|n| {
            let (queue, log) = (queue.clone(), log.clone());
            async move {
                queue.send(n).await.expect("send");
                log.line(format_args!("S {n}"));
            }
        });
        futures::future::join_all(sends).await;
        a = b;
    }

    if !args.drain {
        // Until killed.
        flow.await
            .expect("the consumer task")
            .into_result()
            .expect("the consumer");
        unreachable!("the consumer stopped without being asked");
    }
    // Until nothing is left: new, retried, delayed or leased by a killed run.
    loop {
        let stats = queue.stats().await.expect("stats");
        let group = stats.group(GROUP).expect("the group");
        if group.depth + group.in_flight + group.delayed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.stop(Duration::from_secs(5));
    flow.await
        .expect("the consumer task")
        .into_result()
        .expect("the consumer");
    for dead in queue
        .dead_letters(GROUP, usize::MAX)
        .await
        .expect("dead letters")
    {
        let n = dead.message.expect("a dead letter decodes");
        log.line(format_args!("D {n}"));
    }
    println!("drained");
}
