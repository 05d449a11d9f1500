//! The reactive time operators: exact times on the virtual clock, drawn as marble
//! diagrams; content and order on every runtime of the matrix.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::marble::{
    FRAME, Marble, MarbleError, Recording, Token, chars, cold, frame_of, hot, parse, record,
    record_events, record_with, render, values,
};
use common::{Flavor, matrix, run};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::BoxFuture;
use riverbed::reactive::{ReactiveExt, ThrottleConfig, interval, timer};
use riverbed::runtime::{Elapsed, Runtime, RuntimeExt, SharedRuntime, Sleep};

/// Runs `body` on the virtual clock.
fn on_virtual<F, Fut>(body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run(Flavor::Virtual, body);
}

// ---------------------------------------------------------------------------------
// The marble helper itself

mod marble_helper {
    use super::*;

    #[test]
    fn parse_values_idle_frames_and_end() {
        assert_eq!(
            parse("-a-b|"),
            [
                (1, Token::Value('a')),
                (3, Token::Value('b')),
                (4, Token::End)
            ]
        );
        // Spaces take no time.
        assert_eq!(parse("- a - b |"), parse("-a-b|"));
        assert_eq!(parse("---"), []);
    }

    #[test]
    fn a_group_is_one_frame_and_takes_its_width() {
        assert_eq!(
            parse("--(ab)-c|"),
            [
                (2, Token::Value('a')),
                (2, Token::Value('b')),
                (7, Token::Value('c')),
                (8, Token::End)
            ]
        );
        assert_eq!(parse("-(a|)"), [(1, Token::Value('a')), (1, Token::End)]);
    }

    #[test]
    fn an_error_ends_the_stream_in_its_frame() {
        assert_eq!(
            parse("-a#"),
            [(1, Token::Value('a')), (2, Token::Error), (2, Token::End)]
        );
        assert_eq!(
            parse("(a#)"),
            [(0, Token::Value('a')), (0, Token::Error), (0, Token::End)]
        );
    }

    #[test]
    fn frames_count_from_the_subscription_point() {
        assert_eq!(
            parse("--a-^-b|"),
            [
                (-2, Token::Value('a')),
                (2, Token::Value('b')),
                (3, Token::End)
            ]
        );
    }

    #[test]
    #[should_panic(expected = "unclosed group")]
    fn an_unclosed_group_is_refused() {
        parse("-(ab");
    }

    #[test]
    #[should_panic(expected = "nested group")]
    fn a_nested_group_is_refused() {
        parse("((a))");
    }

    #[test]
    #[should_panic(expected = "nothing may follow the end")]
    fn events_after_the_end_are_refused() {
        parse("-a|-b");
    }

    #[test]
    #[should_panic(expected = "nothing may follow the end")]
    fn events_after_an_error_are_refused() {
        parse("-(#a)");
    }

    #[test]
    #[should_panic(expected = "unknown marble character")]
    fn unknown_characters_are_refused() {
        parse("-a-*|");
    }

    #[test]
    #[should_panic(expected = "no subscription point")]
    fn a_cold_diagram_has_no_subscription_point() {
        on_virtual(|rt| async move {
            drop(cold(&rt, "-^-a|"));
        });
    }

    /// Canonical diagrams come back as they were parsed.
    #[test]
    fn parse_and_render_round_trip() {
        for diagram in [
            "|",
            "-a-b|",
            "--(ab)-c|",
            "a(bc)d|",
            "-a#",
            "#",
            "(a|)",
            "---(ab|)",
            "-(a#)",
            "(ab)(cd)|",
            "0123456789|",
        ] {
            let events: Vec<(u64, Token)> = parse(diagram)
                .into_iter()
                .map(|(frame, token)| (frame as u64, token))
                .collect();
            assert_eq!(render(&events), diagram);
        }
    }

    #[test]
    fn render_draws_an_error_before_a_later_end_literally() {
        let events = [(1, Token::Error), (1, Token::Value('a')), (6, Token::End)];
        assert_eq!(render(&events), "-(#a)-|");
        let events = [(0, Token::Error), (2, Token::End)];
        assert_eq!(render(&events), "#-|");
    }

    #[test]
    #[should_panic(expected = "falls inside the group")]
    fn render_refuses_an_event_inside_a_group_s_width() {
        let events = [
            (0, Token::Value('a')),
            (0, Token::Value('b')),
            (2, Token::End),
        ];
        render(&events);
    }

    /// A cold source emits at its frames from its first poll, and `record` draws it
    /// back unchanged.
    #[test]
    fn cold_sources_play_their_diagram() {
        on_virtual(|rt| async move {
            let recording = record_events(&rt, cold(&rt, "-a--b|")).await;
            assert_eq!(
                recording,
                Recording {
                    items: vec![(FRAME, Ok('a')), (4 * FRAME, Ok('b'))],
                    end: 5 * FRAME
                }
            );
            for diagram in ["-a-b|", "(ab)-c|", "--a#", "|", "-(ab|)", "a(b#)"] {
                assert_eq!(record(&rt, cold(&rt, diagram)).await, diagram);
            }
            // Frame 0 is the first poll, not the creation.
            let late = cold(&rt, "-a|");
            rt.sleep(7 * FRAME).await;
            assert_eq!(record(&rt, late).await, "-a|");
        });
    }

    #[test]
    fn an_error_is_an_item_then_the_end() {
        on_virtual(|rt| async move {
            let items: Vec<_> = cold(&rt, "a#").collect().await;
            assert_eq!(items, [Ok('a'), Err(MarbleError)]);
        });
    }

    /// A hot source plays from `^`, whoever listens; a subscriber sees what comes at
    /// or after its subscription.
    #[test]
    fn hot_sources_play_from_the_subscription_point() {
        on_virtual(|rt| async move {
            let source = hot(&rt, "--a-^-b-c-d|");
            let first = source.subscribe();
            assert_eq!(record(&rt, first).await, "--b-c-d|");
            // The clock is now at frame 7 of the diagram: only the end is left.
            assert_eq!(record(&rt, source.subscribe()).await, "|");

            let source = hot(&rt, "^-b-c|");
            rt.sleep(2 * FRAME).await;
            // Subscribed at frame 2, the frame of `b`: it is seen.
            assert_eq!(record(&rt, source.subscribe()).await, "b-c|");
            let source = hot(&rt, "^-b-c|");
            rt.sleep(2 * FRAME + FRAME / 2).await;
            let late = record_events(&rt, source.subscribe()).await;
            assert_eq!(late.items, [(FRAME + FRAME / 2, Ok('c'))]);
        });
    }

    #[test]
    fn record_with_draws_any_item() {
        on_virtual(|rt| async move {
            let numbers = cold(&rt, "-a-b|").map(|m| m.map(|c| c as u32));
            let drawn = record_with(&rt, numbers, |n| {
                char::from_digit(n.unwrap() - 'a' as u32, 10).unwrap()
            })
            .await;
            assert_eq!(drawn, "-0-1|");

            let batches = cold(&rt, "-a-b-c#").chunks(2);
            let table = values(vec![('x', chars("ab")), ('y', chars("c#"))]);
            assert_eq!(record_with(&rt, batches, table).await, "---x--(y|)");
        });
    }
}

mod marble_helper_limits {
    use super::*;

    #[test]
    #[should_panic(expected = "still open")]
    fn record_gives_up_on_a_stream_that_never_ends() {
        on_virtual(|rt| async move {
            record(&rt, cold(&rt, "-a-")).await;
        });
    }

    #[test]
    #[should_panic(expected = "falls between frames")]
    fn record_refuses_items_between_frames() {
        on_virtual(|rt| async move {
            let clock = rt.clone();
            let late = cold(&rt, "a|").then(move |m| {
                let nap = clock.sleep(FRAME / 2);
                async move {
                    nap.await;
                    m
                }
            });
            record(&rt, late).await;
        });
    }

    #[test]
    #[should_panic(expected = "is not in the table")]
    fn values_names_an_item_it_does_not_know() {
        on_virtual(|rt| async move {
            let table = values(vec![('x', chars("ab"))]);
            record_with(&rt, cold(&rt, "-a-b-c|").chunks(2), table).await;
        });
    }

    #[test]
    fn frames_of_exact_times() {
        assert_eq!(frame_of(std::time::Duration::ZERO), 0);
        assert_eq!(frame_of(3 * FRAME), 3);
    }
}

// ---------------------------------------------------------------------------------
// Helpers

/// `n` frames.
fn f(n: u32) -> Duration {
    FRAME * n
}

/// Draws a `timeout` item: its value, `#` for an upstream error, `T` for `Elapsed`.
fn timed_out(item: &Result<Marble, Elapsed>) -> char {
    match item {
        Ok(Ok(c)) => *c,
        Ok(Err(MarbleError)) => '#',
        Err(Elapsed) => 'T',
    }
}

/// A runtime on another's clock that counts the timers created through it.
#[derive(Debug)]
struct CountingRuntime {
    inner: SharedRuntime,
    sleeps: AtomicUsize,
}

impl CountingRuntime {
    fn new(inner: &SharedRuntime) -> Arc<Self> {
        Arc::new(CountingRuntime {
            inner: inner.clone(),
            sleeps: AtomicUsize::new(0),
        })
    }

    fn sleeps(&self) -> usize {
        self.sleeps.load(Ordering::SeqCst)
    }
}

impl Runtime for CountingRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        self.inner.spawn_boxed(task);
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        self.inner.sleep_until(deadline)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }
}

/// A diagram with `n` values, one per frame, then the end.
fn busy(n: usize) -> String {
    "a".repeat(n) + "|"
}

// ---------------------------------------------------------------------------------
// Exact behaviour on the virtual clock, as marble diagrams

mod debounce {
    use super::*;

    #[test]
    fn emits_after_quiet_and_flushes_at_the_end() {
        on_virtual(|rt| async move {
            // `b` comes exactly when `a`'s quiet period ends: too late to replace it.
            let out = cold(&rt, "-a-b-----c|").debounce(f(2), &rt);
            assert_eq!(record(&rt, out).await, "---a-b----(c|)");
        });
    }

    /// The example of the marble helper's docs.
    #[test]
    fn the_marble_docs_example() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-ab-----c|").debounce(2 * FRAME, &rt);
            assert_eq!(record(&rt, out).await, "----b----(c|)");
        });
    }

    #[test]
    fn a_burst_keeps_its_last_item() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-abc---d|").debounce(f(2), &rt);
            assert_eq!(record(&rt, out).await, "-----c--(d|)");
        });
    }

    #[test]
    fn completion_mid_window_emits_the_held_item_at_once() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a|").debounce(f(5), &rt);
            assert_eq!(record(&rt, out).await, "--(a|)");
            let out = cold(&rt, "---|").debounce(f(5), &rt);
            assert_eq!(record(&rt, out).await, "---|");
        });
    }

    #[test]
    fn an_error_mid_window_is_an_item() {
        on_virtual(|rt| async move {
            // The error replaces `a`, and goes out as upstream ends.
            let out = cold(&rt, "-a-#").debounce(f(5), &rt);
            assert_eq!(record(&rt, out).await, "---#");
            let out = cold(&rt, "-a----#").debounce(f(2), &rt);
            assert_eq!(record(&rt, out).await, "---a--#");
        });
    }

    #[test]
    fn zero_quiet_lets_everything_through() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-(ab)-c|").debounce(Duration::ZERO, &rt);
            assert_eq!(record(&rt, out).await, "-(ab)-c|");
        });
    }

    #[test]
    fn a_busy_stream_arms_a_timer_per_quiet_period_not_per_item() {
        on_virtual(|rt| async move {
            let counting = CountingRuntime::new(&rt);
            let timers: SharedRuntime = counting.clone();
            let out = cold(&rt, &busy(100)).debounce(f(5), &timers);
            let recording = record_events(&rt, out).await;
            assert_eq!(recording.items, [(f(100), Ok('a'))]);
            // Armed at the first item, and re-armed each time it fires early, for the
            // deadline of the moment: four frames on. Not one per item.
            assert!(
                counting.sleeps() <= 100 / 4 + 1,
                "{} timers",
                counting.sleeps()
            );
        });
    }
}

mod throttle {
    use super::*;

    #[test]
    fn lets_the_first_item_of_each_window_through() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-abc-d---e|").throttle(f(3), &rt);
            assert_eq!(record(&rt, out).await, "-a---d---e|");
        });
    }

    #[test]
    fn an_item_exactly_at_the_window_end_opens_the_next() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a--b|").throttle(f(3), &rt);
            assert_eq!(record(&rt, out).await, "-a--b|");
        });
    }

    #[test]
    fn an_error_mid_window_is_dropped_like_any_item_and_the_end_is_immediate() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a-#").throttle(f(3), &rt);
            assert_eq!(record(&rt, out).await, "-a-|");
        });
    }

    #[test]
    fn a_zero_window_lets_everything_through() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-(ab)c|").throttle(Duration::ZERO, &rt);
            assert_eq!(record(&rt, out).await, "-(ab)c|");
        });
    }

    #[test]
    fn leading_and_trailing() {
        on_virtual(|rt| async move {
            let both = ThrottleConfig::LEADING_AND_TRAILING;
            let out = cold(&rt, "-abc-----d|").throttle_with(f(3), both, &rt);
            assert_eq!(record(&rt, out).await, "-a--c----d|");
            // `c` arrives exactly as the first window closes: it is inside the second
            // window that `b`'s trailing emission opens.
            let out = cold(&rt, "-ab-c|").throttle_with(f(3), both, &rt);
            assert_eq!(record(&rt, out).await, "-a--b--(c|)");
        });
    }

    #[test]
    fn completion_mid_window_waits_for_the_trailing_item() {
        on_virtual(|rt| async move {
            let both = ThrottleConfig::LEADING_AND_TRAILING;
            let out = cold(&rt, "-ab|").throttle_with(f(3), both, &rt);
            assert_eq!(record(&rt, out).await, "-a--(b|)");
            let out = cold(&rt, "-a-#").throttle_with(f(3), both, &rt);
            assert_eq!(record(&rt, out).await, "-a--#");
        });
    }

    #[test]
    fn trailing_only() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-ab-c---|").throttle_with(f(3), ThrottleConfig::TRAILING, &rt);
            assert_eq!(record(&rt, out).await, "----b--c|");
        });
    }

    #[test]
    fn neither_leading_nor_trailing_lets_nothing_through() {
        on_virtual(|rt| async move {
            let none = ThrottleConfig {
                leading: false,
                trailing: false,
            };
            let out = cold(&rt, "-ab|").throttle_with(f(3), none, &rt);
            assert_eq!(record(&rt, out).await, "---|");
            assert_eq!(ThrottleConfig::default(), ThrottleConfig::LEADING);
        });
    }

    #[test]
    fn a_busy_stream_arms_a_timer_per_window_not_per_item() {
        on_virtual(|rt| async move {
            let counting = CountingRuntime::new(&rt);
            let timers: SharedRuntime = counting.clone();
            let both = ThrottleConfig::LEADING_AND_TRAILING;
            let out = cold(&rt, &busy(100)).throttle_with(f(10), both, &timers);
            let recording = record_events(&rt, out).await;
            // The first at once, then one at the end of every window.
            assert_eq!(recording.items.len(), 11);
            assert!(counting.sleeps() <= 11, "{} timers", counting.sleeps());
        });
    }
}

mod sample {
    use super::*;

    #[test]
    fn emits_the_newest_item_at_each_tick() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-ab-c---d--|").sample(f(3), &rt);
            assert_eq!(record(&rt, out).await, "---b--c--d-|");
        });
    }

    #[test]
    fn an_item_exactly_at_a_tick_waits_for_the_next_and_the_end_drops_it() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a-b|").sample(f(3), &rt);
            assert_eq!(record(&rt, out).await, "---a|");
        });
    }

    #[test]
    fn errors_are_sampled_like_any_item() {
        on_virtual(|rt| async move {
            // Completion mid-window drops the error held.
            let out = cold(&rt, "-a#").sample(f(3), &rt);
            assert_eq!(record(&rt, out).await, "--|");
            // An error that is not the last item is sampled.
            let source = cold(&rt, "-#").chain(cold(&rt, "---|"));
            let out = source.sample(f(3), &rt);
            assert_eq!(record(&rt, out).await, "---#|");
        });
    }
}

mod audit {
    use super::*;

    #[test]
    fn emits_the_newest_item_when_the_window_closes() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-ab----c-d|").audit(f(3), &rt);
            assert_eq!(record(&rt, out).await, "----b-----(d|)");
        });
    }

    #[test]
    fn completion_mid_window_waits_for_the_window() {
        on_virtual(|rt| async move {
            // `b` arrives exactly as `a`'s window closes: it opens the next one.
            let out = cold(&rt, "-a--b|").audit(f(3), &rt);
            assert_eq!(record(&rt, out).await, "----a--(b|)");
        });
    }

    #[test]
    fn an_error_mid_window_is_held_like_any_item() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a#").audit(f(3), &rt);
            assert_eq!(record(&rt, out).await, "----#");
        });
    }
}

mod chunks_timeout {
    use super::*;

    #[test]
    fn by_count_by_time_and_at_the_end() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-abc-d----ef|").chunks_timeout(3, f(4), &rt);
            let table = values(vec![
                ('x', chars("abc")),
                ('y', chars("d")),
                ('z', chars("ef")),
            ]);
            assert_eq!(record_with(&rt, out, table).await, "---x-----y--(z|)");
        });
    }

    #[test]
    fn an_item_exactly_at_the_deadline_starts_the_next_chunk() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a---b|").chunks_timeout(3, f(4), &rt);
            let table = values(vec![('x', chars("a")), ('y', chars("b"))]);
            assert_eq!(record_with(&rt, out, table).await, "-----x(y|)");
        });
    }

    #[test]
    fn an_error_mid_chunk_is_collected_and_completion_flushes() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a-#").chunks_timeout(3, f(4), &rt);
            let table = values(vec![('x', chars("a#"))]);
            assert_eq!(record_with(&rt, out, table).await, "---(x|)");
        });
    }

    #[test]
    fn zero_length_means_one() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-ab|").chunks_timeout(0, f(4), &rt);
            let table = values(vec![('x', chars("a")), ('y', chars("b"))]);
            assert_eq!(record_with(&rt, out, table).await, "-xy|");
        });
    }
}

mod window_time {
    use super::*;

    fn collected<S: futures::Stream>(windows: S) -> impl futures::Stream<Item = Vec<Marble>>
    where
        S::Item: futures::Stream<Item = Marble>,
    {
        windows.then(|window| window.collect::<Vec<_>>())
    }

    #[test]
    fn consecutive_windows_of_fixed_length() {
        on_virtual(|rt| async move {
            let out = collected(cold(&rt, "-ab-c--d-|").window_time(f(3), &rt));
            let table = values(vec![
                ('x', chars("ab")),
                ('y', chars("c")),
                ('z', chars("d")),
                ('e', chars("")),
            ]);
            // Upstream ends exactly as the third window closes: in the fourth.
            assert_eq!(record_with(&rt, out, table).await, "---x--y--(ze|)");
        });
    }

    #[test]
    fn idle_time_gives_empty_windows_and_completion_ends_the_open_one() {
        on_virtual(|rt| async move {
            let out = collected(cold(&rt, "-------a|").window_time(f(3), &rt));
            let table = values(vec![('x', chars("a")), ('e', chars(""))]);
            assert_eq!(record_with(&rt, out, table).await, "---e--e-(x|)");
            let out = collected(cold(&rt, "-a|").window_time(f(3), &rt));
            let table = values(vec![('x', chars("a"))]);
            assert_eq!(record_with(&rt, out, table).await, "--(x|)");
        });
    }

    #[test]
    fn an_error_mid_window_goes_into_the_window() {
        on_virtual(|rt| async move {
            let out = collected(cold(&rt, "-a#").window_time(f(3), &rt));
            let table = values(vec![('x', chars("a#"))]);
            assert_eq!(record_with(&rt, out, table).await, "--(x|)");
        });
    }

    #[test]
    fn windows_are_numbered_and_an_old_window_ends_when_the_next_opens() {
        on_virtual(|rt| async move {
            let mut windows = cold(&rt, "-a---b|").window_time(f(3), &rt);
            let mut first = windows.next().await.expect("a first window");
            assert_eq!(first.number(), 1);
            // Not read during its time: `a` stays upstream, for the window after.
            let mut second = windows.next().await.expect("a second window");
            assert_eq!(second.number(), 2);
            assert_eq!(first.next().await, None);
            assert_eq!(second.next().await, Some(Ok('a')));
            assert_eq!(second.next().await, None);
            let third = windows.next().await.expect("a third window");
            assert_eq!(third.collect::<Vec<_>>().await, [Ok('b')]);
            // Upstream ends exactly as the third window closes: the fourth sees it.
            let fourth = windows.next().await.expect("a fourth window");
            assert_eq!(fourth.number(), 4);
            assert_eq!(fourth.collect::<Vec<_>>().await, []);
            assert!(windows.next().await.is_none());
        });
    }

    #[test]
    fn a_late_outer_poll_skips_the_windows_in_the_past() {
        on_virtual(|rt| async move {
            let start = rt.now();
            let mut windows = cold(&rt, "---------a|").window_time(f(2), &rt);
            drop(windows.next().await);
            rt.sleep(f(7)).await;
            // Frame 7 falls in the fourth window, [6, 8): the second and third, wholly
            // in the past, are skipped, and the numbers show it.
            let window = windows.next().await.expect("a window");
            assert_eq!(window.number(), 4);
            assert_eq!(window.collect::<Vec<_>>().await, []);
            assert_eq!(rt.now() - start, f(8));
        });
    }
}

mod delay {
    use super::*;

    #[test]
    fn shifts_every_item_and_keeps_the_order() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a-(bc)--d|").delay(f(2), &rt);
            assert_eq!(record(&rt, out).await, "---a-(bc)--(d|)");
        });
    }

    #[test]
    fn completion_mid_window_waits_for_the_items_in_flight() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a|").delay(f(3), &rt);
            assert_eq!(record(&rt, out).await, "----(a|)");
            // With nothing in flight, the end is not delayed.
            let out = cold(&rt, "--|").delay(f(3), &rt);
            assert_eq!(record(&rt, out).await, "--|");
        });
    }

    #[test]
    fn an_error_mid_window_is_delayed_like_any_item() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a#").delay(f(2), &rt);
            assert_eq!(record(&rt, out).await, "---a#");
        });
    }

    #[test]
    fn zero_delay_lets_everything_through() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a(bc)|").delay(Duration::ZERO, &rt);
            assert_eq!(record(&rt, out).await, "-a(bc)|");
        });
    }

    #[test]
    fn a_burst_waits_on_one_timer_and_holds_only_what_it_received() {
        on_virtual(|rt| async move {
            let counting = CountingRuntime::new(&rt);
            let timers: SharedRuntime = counting.clone();
            let mut out = futures::stream::iter(0..1000u32).delay(f(1), &timers);
            assert_eq!(out.next().await, Some(0));
            assert_eq!(out.in_flight(), 999);
            let rest: Vec<u32> = out.collect().await;
            assert_eq!(rest, (1..1000).collect::<Vec<_>>());
            assert_eq!(counting.sleeps(), 1);
        });
    }
}

mod timeout {
    use super::*;

    #[test]
    fn ends_with_elapsed_when_an_item_is_late() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a-b---c|").timeout(f(3), &rt);
            assert_eq!(record_with(&rt, out, timed_out).await, "-a-b--(T|)");
            // Exactly at the limit is too late.
            let out = cold(&rt, "---a|").timeout(f(3), &rt);
            assert_eq!(record_with(&rt, out, timed_out).await, "---(T|)");
            // A source that falls silent.
            let out = cold(&rt, "-a-").timeout(f(5), &rt);
            assert_eq!(record_with(&rt, out, timed_out).await, "-a----(T|)");
        });
    }

    #[test]
    fn items_in_time_pass_and_errors_are_items() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "--a--b|").timeout(f(4), &rt);
            assert_eq!(record_with(&rt, out, timed_out).await, "--a--b|");
            let out = cold(&rt, "-a#").timeout(f(3), &rt);
            assert_eq!(record_with(&rt, out, timed_out).await, "-a#");
        });
    }

    #[test]
    fn a_slow_consumer_does_not_cause_a_timeout() {
        on_virtual(|rt| async move {
            let mut out = cold(&rt, "-ab|").timeout(f(3), &rt);
            assert_eq!(out.next().await, Some(Ok(Ok('a'))));
            // `b` has been waiting since frame 2; the wait starts when it is asked for.
            rt.sleep(f(10)).await;
            assert_eq!(out.next().await, Some(Ok(Ok('b'))));
            assert_eq!(out.next().await, None);
        });
    }

    #[test]
    fn a_busy_stream_re_arms_its_timer_only_when_it_fires() {
        on_virtual(|rt| async move {
            let counting = CountingRuntime::new(&rt);
            let timers: SharedRuntime = counting.clone();
            let out = cold(&rt, &busy(100)).timeout(f(10), &timers);
            let recording = record_events(&rt, out).await;
            assert_eq!(recording.items.len(), 100);
            assert!(recording.items.iter().all(|(_, item)| item.is_ok()));
            // Re-armed each time it fires, for the wait of the moment (nine frames
            // on), not once per item.
            assert!(
                counting.sleeps() <= 100 / 9 + 1,
                "{} timers",
                counting.sleeps()
            );
        });
    }
}

mod sources {
    use super::*;

    fn digit(n: &u64) -> char {
        char::from_digit(u32::try_from(*n).expect("a small tick"), 36).expect("a small tick")
    }

    #[test]
    fn interval_ticks_on_its_schedule() {
        on_virtual(|rt| async move {
            let out = interval(f(2), &rt).take(3);
            assert_eq!(record_with(&rt, out, digit).await, "--0-1-(2|)");
            let out = interval(f(3), &rt).take_until(rt.sleep(f(10)));
            assert_eq!(record_with(&rt, out, digit).await, "---0--1--2|");
        });
    }

    #[test]
    fn interval_skips_missed_ticks_visibly() {
        on_virtual(|rt| async move {
            let clock = rt.clone();
            let stalled = interval(f(2), &rt).then(move |n| {
                // The consumer is busy for 5 frames after the first tick.
                let busy = clock.sleep(if n == 0 { f(5) } else { Duration::ZERO });
                async move {
                    busy.await;
                    n
                }
            });
            // Tick 0 comes out at 7, after the stall; ticks 1 and 2 came due during
            // it, and 2 is reported at once; 3 is on schedule, at 8. (Too close to
            // draw: a group takes its width.)
            let recording = record_events(&rt, stalled.take(3)).await;
            assert_eq!(recording.items, [(f(7), 0), (f(7), 2), (f(8), 3)]);
            assert_eq!(recording.end, f(8));
        });
    }

    #[test]
    fn timer_fires_once() {
        on_virtual(|rt| async move {
            let out = timer(f(3), &rt);
            assert_eq!(record_with(&rt, out, |()| 'x').await, "---(x|)");
            let out = timer(Duration::ZERO, &rt);
            assert_eq!(record_with(&rt, out, |()| 'x').await, "(x|)");
        });
    }
}

// ---------------------------------------------------------------------------------
// Every operator on every runtime: content and order, never exact real timing. The
// items are in the channel before the operator looks, or sent only after the
// operator has answered, so no outcome depends on how fast the machine is; where a
// window must still be open, it is hundreds of milliseconds wide.

mod every_runtime {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `elapsed` is at least `min`: timers never fire early.
    #[track_caller]
    fn at_least(rt: &SharedRuntime, since: Instant, min: Duration) {
        let elapsed = rt.now() - since;
        assert!(elapsed >= min, "{elapsed:?} < {min:?}");
    }

    matrix! {
        /// The last of a burst comes out after the quiet time; the end flushes.
        async fn debounce(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let mut out = rx.debounce(ms(100), &rt);
            let start = rt.now();
            for n in [1, 2, 3] {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(3));
            at_least(&rt, start, ms(100));
            for n in [4, 5] {
                tx.unbounded_send(n).unwrap();
            }
            drop(tx);
            assert_eq!(out.next().await, Some(5));
            assert_eq!(out.next().await, None);
        }

        /// The first of a burst comes out; the rest of its window is dropped; the end
        /// is immediate.
        async fn throttle(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            // Wide: the burst is read long before the window could close.
            let mut out = rx.throttle(Duration::from_secs(5), &rt);
            for n in [1, 2, 3] {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(1));
            drop(tx);
            assert_eq!(out.next().await, None);
        }

        /// Leading and trailing: the first at once, the last when the window closes.
        async fn throttle_with_trailing(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let both = ThrottleConfig::LEADING_AND_TRAILING;
            let mut out = rx.throttle_with(ms(400), both, &rt);
            let start = rt.now();
            for n in [1, 2, 3] {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(1));
            assert_eq!(out.next().await, Some(3));
            at_least(&rt, start, ms(400));
            drop(tx);
            assert_eq!(out.next().await, None);
        }

        /// The newest item at a tick; an item never sampled is dropped at the end.
        async fn sample(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let mut out = rx.sample(ms(100), &rt);
            for n in [1, 2] {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(2));
            tx.unbounded_send(3).unwrap();
            assert_eq!(out.next().await, Some(3));
            drop(tx);
            assert_eq!(out.next().await, None);
        }

        /// The newest item of each window when it closes, the last one included.
        async fn audit(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let mut out = rx.audit(ms(100), &rt);
            let start = rt.now();
            for n in [1, 2] {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(2));
            at_least(&rt, start, ms(100));
            tx.unbounded_send(3).unwrap();
            drop(tx);
            assert_eq!(out.next().await, Some(3));
            assert_eq!(out.next().await, None);
        }
    }

    matrix! {
        /// Full chunks at once, a partial one after the wait, the rest at the end.
        async fn chunks_timeout(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let mut out = rx.chunks_timeout(3, ms(100), &rt);
            let start = rt.now();
            for n in 1..=4 {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(vec![1, 2, 3]));
            assert_eq!(out.next().await, Some(vec![4]));
            at_least(&rt, start, ms(100));
            tx.unbounded_send(5).unwrap();
            drop(tx);
            assert_eq!(out.next().await, Some(vec![5]));
            assert_eq!(out.next().await, None);
        }
    }

    matrix! {
        /// A window holds what arrives while it is open; the end ends the windows.
        async fn window_time(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            // Wide: the first window is read long before it closes.
            let mut windows = rx.window_time(ms(400), &rt);
            for n in [1, 2] {
                tx.unbounded_send(n).unwrap();
            }
            let first = windows.next().await.expect("a first window");
            assert_eq!(first.collect::<Vec<_>>().await, [1, 2]);
            drop(tx);
            let last = windows.next().await.expect("a window to see the end");
            assert!(last.collect::<Vec<u32>>().await.is_empty());
            assert!(windows.next().await.is_none());
        }
    }

    matrix! {
        /// Every item later, in order; the end after the last.
        async fn delay(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let mut out = rx.delay(ms(100), &rt);
            let start = rt.now();
            for n in [1, 2] {
                tx.unbounded_send(n).unwrap();
            }
            assert_eq!(out.next().await, Some(1));
            at_least(&rt, start, ms(100));
            assert_eq!(out.next().await, Some(2));
            tx.unbounded_send(3).unwrap();
            drop(tx);
            assert_eq!(out.next().await, Some(3));
            assert_eq!(out.next().await, None);
        }

        /// Items in time pass; silence ends the stream with `Elapsed`.
        async fn timeout(rt) {
            let (tx, rx) = mpsc::unbounded::<u32>();
            let mut out = rx.timeout(ms(100), &rt);
            tx.unbounded_send(1).unwrap();
            assert_eq!(out.next().await, Some(Ok(1)));
            let start = rt.now();
            assert_eq!(out.next().await, Some(Err(Elapsed)));
            at_least(&rt, start, ms(100));
            assert_eq!(out.next().await, None);
            drop(tx);
        }
    }

    matrix! {
        /// Ticks count up; a tick missed under load shows as a jump, never a repeat.
        async fn interval(rt) {
            let start = rt.now();
            let ticks: Vec<u64> = interval(ms(50), &rt).take(3).collect().await;
            assert_eq!(ticks.len(), 3);
            assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
            let last = ticks[2];
            at_least(&rt, start, ms(50) * (u32::try_from(last).unwrap() + 1));
            if format!("{rt:?}").starts_with("VirtualRuntime") {
                assert_eq!(ticks, [0, 1, 2]);
            }
        }

        /// One item after the delay, then the end.
        async fn timer(rt) {
            let start = rt.now();
            let fired: Vec<()> = timer(ms(50), &rt).collect().await;
            assert_eq!(fired, [()]);
            at_least(&rt, start, ms(50));
        }
    }
}
