//! A real crash: the durable queue in another process (`examples/queue_crash_child.rs`),
//! killed with SIGKILL at random moments under load and restarted, then drained. No
//! message whose send returned `Ok` may be lost; a message may be handled more often
//! than it needs only if a kill caught it in flight; the dead letters hold exactly the
//! poisoned messages.
//!
//! By default 20 cycles and 100,000 messages in all (the seed is printed; run with
//! `-- --nocapture` to see the summary). Longer, by hand:
//!
//! ```sh
//! RIVERBED_CRASH_CYCLES=200 RIVERBED_CRASH_MESSAGES=1000000 \
//!     cargo test --release --all-features --test queue_crash -- --nocapture
//! ```
//!
//! `RIVERBED_CRASH_SEED` replays a run's kill moments (the child's own timing still
//! varies); `RIVERBED_CRASH_DURABILITY=relaxed` runs the child with
//! `Durability::Relaxed`, which must survive a killed process as well.
#![cfg(all(unix, feature = "durable"))]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The child's consumer: workers, and messages each claims (and acknowledges) at once.
const WORKERS: u64 = 4;
const CLAIM_BATCH: u64 = 16;
/// The child's sends in flight at once.
const WINDOW: u64 = 64;
/// The child's retry policy: attempts before a poisoned message is dead-lettered.
const MAX_ATTEMPTS: usize = 3;
/// A kill under load comes at a random moment of the time the child should take to
/// send its share (measured as the cycles go: it depends on the build, the disk and
/// the machine's load), plus a quarter; at most this long after it is ready.
const KILL_WITHIN_MAX: Duration = Duration::from_secs(3);
/// What the child's send rate is assumed to be (messages per millisecond) until the
/// first kill under load measures it.
const FIRST_RATE: f64 = 10.0;

fn poisoned(n: u64) -> bool {
    n.is_multiple_of(997)
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
        Err(_) => default,
    }
}

/// splitmix64: small, seeded, good enough to pick kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// The child program, next to this test's executable:
/// `target/<profile>/deps/queue_crash-…` → `target/<profile>/examples/queue_crash_child`.
/// Under `cargo test` it is (re)built here with the test's profile and features, so it
/// is there and up to date even when only this test target was built; a test binary
/// run by hand uses what is there.
fn child_program() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let child = profile_dir.join("examples").join("queue_crash_child");
    let Ok(cargo) = std::env::var("CARGO") else {
        assert!(
            child.exists(),
            "the crash test's child program is missing at {}: build it with \
             `cargo build --example queue_crash_child --features durable`",
            child.display()
        );
        return child;
    };
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a profile directory");
    let mut features = vec!["durable"];
    for (on, feature) in [
        (cfg!(feature = "tokio"), "tokio"),
        (cfg!(feature = "smol"), "smol"),
        (cfg!(feature = "json"), "json"),
    ] {
        if on {
            features.push(feature);
        }
    }
    let status = Command::new(cargo)
        .args(["build", "--example", "queue_crash_child", "--features"])
        .arg(features.join(","))
        .arg("--profile")
        .arg(if profile == "debug" { "dev" } else { profile })
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .status();
    match status {
        Ok(status) if status.success() && child.exists() => child,
        other => panic!(
            "the crash test's child program could not be built at {} ({other:?}); try \
             `cargo build --example queue_crash_child --features durable`",
            child.display()
        ),
    }
}

/// Starts the child.
fn spawn(program: &Path, dir: &Path, mode: &str, first: u64, count: u64) -> Child {
    Command::new(program)
        .arg(dir.join("store"))
        .arg(dir.join("log"))
        .args([mode, &first.to_string(), &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child")
}

/// Waits until the child has opened the store: it prints `ready` (and nothing else
/// until `drained` at the end, which stays in the pipe).
fn wait_ready(child: &mut Child) {
    let mut line = [0u8; 6];
    let stdout = child.stdout.as_mut().expect("the child's stdout");
    if stdout.read_exact(&mut line).is_err() || &line != b"ready\n" {
        let status = child.wait().expect("wait for the child");
        panic!(
            "the child did not open the store ({status}): {}",
            stderr_of(child)
        );
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        drop(stderr.read_to_string(&mut text));
    }
    text
}

/// What the log says so far.
#[derive(Debug, Default)]
struct Log {
    /// Numbers that may have been sent (reserved before sending).
    reserved: BTreeSet<u64>,
    /// The end of the last reserved range.
    reserved_end: u64,
    /// Numbers whose send returned `Ok`, in log order.
    sent: Vec<u64>,
    /// Handler calls per number.
    processed: BTreeMap<u64, usize>,
    /// Dead letters at the end.
    dead: BTreeSet<u64>,
}

fn read_log(dir: &Path) -> Log {
    let mut log = Log::default();
    let Ok(file) = std::fs::File::open(dir.join("log")) else {
        return log;
    };
    for line in BufReader::new(file).lines() {
        let line = line.expect("read the log");
        let mut words = line.split(' ');
        let tag = words.next().unwrap_or_default();
        let numbers: Vec<u64> = words
            .map(|w| w.parse().unwrap_or_else(|_| panic!("a log line: {line:?}")))
            .collect();
        match (tag, numbers.as_slice()) {
            ("R", &[a, b]) => {
                log.reserved.extend(a..b);
                log.reserved_end = log.reserved_end.max(b);
            }
            ("S", &[n]) => log.sent.push(n),
            ("P", &[n]) => *log.processed.entry(n).or_default() += 1,
            ("D", &[n]) => assert!(log.dead.insert(n), "dead letter {n} listed twice"),
            _ => panic!("a log line: {line:?}"),
        }
    }
    log
}

#[test]
fn killed_at_random_moments_the_queue_loses_nothing() {
    let cycles = env_number("RIVERBED_CRASH_CYCLES", 20);
    let messages = env_number("RIVERBED_CRASH_MESSAGES", 100_000);
    let seed = env_number(
        "RIVERBED_CRASH_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    println!("queue crash test: seed {seed} (RIVERBED_CRASH_SEED={seed} to replay the kills)");
    let mut rng = Rng(seed);
    let program = child_program();
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let started = Instant::now();

    let mut kills = 0u64;
    let mut next = 0u64;
    let mut last_open = Duration::from_millis(50);
    let mut rate = FIRST_RATE;
    for cycle in 0..cycles {
        let log = read_log(dir.path());
        let remaining = messages.saturating_sub(log.sent.len() as u64);
        // An even share of what is left; what a kill cuts short goes to later runs.
        let quota = remaining.div_ceil(cycles - cycle);
        let opening = Instant::now();
        let mut child = spawn(&program, dir.path(), "run", next, quota);
        // Most kills come under load; one in four while the store is being opened
        // (read back, its journal's torn tail cut).
        let while_opening = rng.below(4) == 0;
        let wait = if while_opening {
            Duration::from_millis(rng.below(last_open.as_millis() as u64 + 1))
        } else {
            wait_ready(&mut child);
            last_open = opening.elapsed();
            let sending = Duration::from_secs_f64(quota as f64 / rate / 1000.0);
            let window = (sending * 5 / 4).min(KILL_WITHIN_MAX);
            Duration::from_millis(rng.below(window.as_millis() as u64 + 1))
        };
        std::thread::sleep(wait);
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!(
                "cycle {cycle}: the child ended by itself ({status}): {}",
                stderr_of(&mut child)
            );
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("wait for the child");
        assert_eq!(
            status.signal(),
            Some(9),
            "cycle {cycle}: the child ended with {status}, not by the kill: {}",
            stderr_of(&mut child)
        );
        kills += 1;
        let after = read_log(dir.path());
        let sent = (after.sent.len() - log.sent.len()) as u64;
        if !while_opening && sent < quota && wait >= Duration::from_millis(20) {
            // Cut short while sending: a measure of the rate (blended, it is noisy).
            let measured = sent as f64 / wait.as_secs_f64() / 1000.0;
            rate = ((rate + measured) / 2.0).max(0.1);
        }
        println!(
            "cycle {cycle:2}: killed {:4} ms after {}: {:5} of {quota:5} sent, \
             {:6} handler calls so far",
            wait.as_millis(),
            if while_opening {
                "starting"
            } else {
                "ready   "
            },
            sent,
            after.processed.values().sum::<usize>(),
        );
        next = next.max(after.reserved_end);
    }

    // The rest, then everything handled.
    let remaining = messages.saturating_sub(read_log(dir.path()).sent.len() as u64);
    let draining = Instant::now();
    let mut child = spawn(&program, dir.path(), "drain", next, remaining);
    wait_ready(&mut child);
    let status = child.wait().expect("wait for the draining child");
    println!(
        "drain: {remaining} sent and everything handled in {} ms",
        draining.elapsed().as_millis()
    );
    assert!(
        status.success(),
        "the draining child failed ({status}): {}",
        stderr_of(&mut child)
    );
    let elapsed = started.elapsed();

    let log = read_log(dir.path());
    let sent: BTreeSet<u64> = log.sent.iter().copied().collect();
    assert_eq!(sent.len(), log.sent.len(), "a number was sent twice");
    assert_eq!(sent.len() as u64, messages, "every message was sent");

    let lost: Vec<u64> = sent
        .iter()
        .copied()
        .filter(|&n| !poisoned(n) && !log.processed.contains_key(&n))
        .collect();
    assert!(lost.is_empty(), "sent and never handled: {lost:?}");

    let unknown: Vec<u64> = log
        .processed
        .keys()
        .chain(&log.dead)
        .copied()
        .filter(|n| !log.reserved.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "handled or dead-lettered, never sent: {unknown:?}"
    );
    // Sends that reached the disk but not the log (the kill came in between).
    let unlogged: BTreeSet<u64> = log
        .processed
        .keys()
        .chain(&log.dead)
        .copied()
        .filter(|n| !sent.contains(n))
        .collect();
    assert!(
        unlogged.len() as u64 <= kills * WINDOW,
        "{} messages handled without a logged send, more than {kills} kills × {WINDOW} \
         sends in flight",
        unlogged.len()
    );

    // A handler call more than a message needs: a second call of a good message, or
    // a poisoned one's beyond its attempts. Every call follows a committed claim that
    // counted an attempt, so a poisoned message goes past its attempts only when a
    // kill came between its last call and its dead-lettering; and a good message is
    // called twice only when a kill came before its acknowledgement was committed.
    // Each kill catches at most the messages its workers had claimed.
    let duplicates: u64 = log
        .processed
        .iter()
        .map(|(&n, &calls)| {
            let needed = if poisoned(n) { MAX_ATTEMPTS } else { 1 };
            calls.saturating_sub(needed) as u64
        })
        .sum();
    let bound = kills * WORKERS * CLAIM_BATCH;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicate handler calls, more than {kills} kills × {WORKERS} workers \
         × {CLAIM_BATCH} claimed"
    );
    let over_attempts: Vec<(u64, usize)> = log
        .processed
        .iter()
        .filter(|&(&n, &calls)| poisoned(n) && calls as u64 > MAX_ATTEMPTS as u64 + kills)
        .map(|(&n, &calls)| (n, calls))
        .collect();
    assert!(
        over_attempts.is_empty(),
        "poisoned messages handled more than {MAX_ATTEMPTS} times plus once per kill: \
         {over_attempts:?}"
    );

    let should_be_dead: BTreeSet<u64> = sent.iter().copied().filter(|&n| poisoned(n)).collect();
    let missing: Vec<&u64> = should_be_dead.difference(&log.dead).collect();
    assert!(
        missing.is_empty(),
        "poisoned, sent, not dead-lettered: {missing:?}"
    );
    let wrongly_dead: Vec<u64> = log.dead.iter().copied().filter(|&n| !poisoned(n)).collect();
    assert!(
        wrongly_dead.is_empty(),
        "dead letters that should not be: {wrongly_dead:?}"
    );

    println!(
        "queue crash test: {cycles} cycles, {messages} messages sent, {kills} kills, \
         {duplicates} duplicate handler calls (bound {bound}), {} sends unlogged at a kill, \
         {} dead letters, {:.1} s",
        unlogged.len(),
        log.dead.len(),
        elapsed.as_secs_f64()
    );
}
