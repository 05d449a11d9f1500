//! Marble diagrams: streams described, and recorded, as strings on the virtual clock.
//!
//! A test builds its input from a diagram ([`cold`], [`hot`]), runs it through the
//! operators under test and compares what comes out, drawn in the same syntax by
//! [`record`], with the diagram it expects:
//!
//! ```ignore
//! common::run(Flavor::Virtual, |rt| async move {
//!     let out = cold(&rt, "-ab-----c|").debounce(2 * FRAME, &rt);
//!     assert_eq!(record(&rt, out).await, "----b----(c|)");
//! });
//! ```
//!
//! # Syntax (RxJS's)
//!
//! Every character but a space takes one frame of time ([`FRAME`], 10 ms):
//!
//! | char | meaning |
//! |---|---|
//! | `-` | a frame in which nothing happens |
//! | a letter or digit | that character is emitted as a value, `Ok(c)` |
//! | `#` | an error, `Err(MarbleError)`, and the stream ends in the same frame |
//! | `\|` | the stream ends |
//! | `(ab)` | the values inside are emitted in one frame, the frame of the `(` |
//! | `^` | a hot source's subscription point: frame 0 of its diagram |
//! | space | ignored, takes no time |
//!
//! A group takes as many frames as it has characters, parentheses included, as in
//! RxJS: in `(ab)-c`, `a` and `b` are at frame 0 and `c` at frame 5. Nothing may
//! follow the end (`|` or `#`) but the `)` that closes its group.
//!
//! # Recorded diagrams
//!
//! [`record`] runs a stream until it ends and draws every item at the frame it came
//! out, idle frames as `-` and the end as `|`. An `Err` item (`#`) followed by the end
//! in the same frame is drawn `#` alone, the form a cold source's `#` takes. Several
//! events in one frame are drawn as a group, which takes its width in frames; an event
//! that falls inside the width of the group before it cannot be drawn, and `record`
//! panics, pointing to [`record_events`].
//!
//! A recorded diagram therefore always ends with the stream's end (`|`, or `#`): there
//! are no trailing frames, and `-a-b` is never a recording (it is a source that never
//! ends). A stream that is still open after [`MAX_FRAMES`] frames makes `record` panic;
//! bound such a stream with `take(n)` or `take_until(rt.sleep(..))`, whose end is then
//! drawn.
//!
//! Times are exact only on the virtual clock: `record` panics when an item comes out
//! between two frames. [`record_events`] gives the exact times instead.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::future::poll_fn;
use riverbed::runtime::{RuntimeExt, SharedRuntime, Sleep};

/// The time one character of a diagram takes.
pub const FRAME: Duration = Duration::from_millis(10);

/// How long [`record`] waits for a stream to end before it gives up.
pub const MAX_FRAMES: u32 = 10_000;

/// The error a `#` of a diagram stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarbleError;

impl fmt::Display for MarbleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("marble error")
    }
}

impl std::error::Error for MarbleError {}

/// The item of a diagram's stream: a value, or the error of a `#`.
pub type Marble = Result<char, MarbleError>;

/// One event of a diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A value (a letter or digit).
    Value(char),
    /// `#`: an `Err` item.
    Error,
    /// `|`: the end of the stream.
    End,
}

impl Token {
    fn symbol(self) -> char {
        match self {
            Token::Value(c) => c,
            Token::Error => '#',
            Token::End => '|',
        }
    }
}

/// Parses `diagram` into its events, each with its frame relative to the `^` (or to
/// the start, without one); a `#` gives an [`Token::Error`] and an [`Token::End`] in
/// the same frame.
///
/// # Panics
///
/// On a malformed diagram: an unknown character, a nested, empty or unclosed group,
/// `-` or `^` inside a group, two `^`, or anything after the end.
pub fn parse(diagram: &str) -> Vec<(i64, Token)> {
    let mut events = Vec::new();
    let mut group: Option<(i64, usize)> = None;
    let mut subscription = None;
    let mut ended = false;
    // Every character but a space takes a frame.
    for (frame, c) in (0i64..).zip(diagram.chars().filter(|c| !c.is_whitespace())) {
        assert!(
            !ended || c == ')',
            "{diagram:?}: nothing may follow the end but the ')' of its group"
        );
        let at = group.map_or(frame, |(start, _)| start);
        let mut push = |token| {
            events.push((at, token));
            if let Some((_, len)) = group.as_mut() {
                *len += 1;
            }
        };
        match c {
            '-' => assert!(group.is_none(), "{diagram:?}: '-' inside a group"),
            '(' => {
                assert!(group.is_none(), "{diagram:?}: nested group");
                group = Some((frame, 0));
            }
            ')' => match group.take() {
                Some((_, 0)) => panic!("{diagram:?}: empty group"),
                Some(_) => {}
                None => panic!("{diagram:?}: ')' without '('"),
            },
            '^' => {
                assert!(group.is_none(), "{diagram:?}: '^' inside a group");
                assert!(subscription.is_none(), "{diagram:?}: two '^'");
                subscription = Some(frame);
            }
            '|' => {
                push(Token::End);
                ended = true;
            }
            '#' => {
                push(Token::Error);
                push(Token::End);
                ended = true;
            }
            c if c.is_ascii_alphanumeric() => push(Token::Value(c)),
            other => panic!("{diagram:?}: unknown marble character {other:?}"),
        }
    }
    assert!(group.is_none(), "{diagram:?}: unclosed group");
    let zero = subscription.unwrap_or(0);
    events
        .into_iter()
        .map(|(at, token)| (at - zero, token))
        .collect()
}

/// Draws `events` (frames from 0, in order) as a diagram; see the
/// [module docs](self) for the rules.
///
/// # Panics
///
/// When an event falls inside the width of the group before it, or frames go
/// backwards.
pub fn render(events: &[(u64, Token)]) -> String {
    let mut out = String::new();
    let mut cursor = 0u64;
    let mut rest = events;
    while let Some(&(frame, _)) = rest.first() {
        let len = rest.iter().take_while(|(at, _)| *at == frame).count();
        let (same_frame, later) = rest.split_at(len);
        rest = later;
        let mut symbols: Vec<char> = same_frame.iter().map(|(_, t)| t.symbol()).collect();
        if symbols.ends_with(&['#', '|']) {
            // A `#` already says the stream ended in its frame.
            symbols.pop();
        }
        assert!(
            frame >= cursor,
            "cannot draw {events:?}: the event at frame {frame} falls inside the group \
             before it (a group takes its width in frames); compare record_events instead"
        );
        out.extend(std::iter::repeat_n('-', (frame - cursor) as usize));
        if let [symbol] = symbols[..] {
            out.push(symbol);
            cursor = frame + 1;
        } else {
            out.push('(');
            out.extend(&symbols);
            out.push(')');
            cursor = frame + symbols.len() as u64 + 2;
        }
    }
    out
}

/// A stream of a diagram's events at their times on the runtime's clock; from
/// [`cold`] and [`Hot::subscribe`].
pub struct Marbles {
    rt: SharedRuntime,
    /// Frame 0; a cold source takes the time of its first poll.
    origin: Option<Instant>,
    events: VecDeque<(i64, Token)>,
    sleep: Option<Sleep>,
    ended: bool,
}

impl fmt::Debug for Marbles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Marbles")
            .field("events", &self.events)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The instant of `frame` frames after (or before, when negative) `origin`.
fn instant_of(origin: Instant, frame: i64) -> Instant {
    let span = FRAME * u32::try_from(frame.unsigned_abs()).expect("a diagram of sane length");
    if frame >= 0 {
        origin + span
    } else {
        origin.checked_sub(span).unwrap_or(origin)
    }
}

impl Stream for Marbles {
    type Item = Marble;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Marble>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let origin = *this.origin.get_or_insert_with(|| this.rt.now());
        // A diagram without an end stays open, silently, after its last event.
        let Some(&(frame, token)) = this.events.front() else {
            return Poll::Pending;
        };
        let due = instant_of(origin, frame);
        if this.sleep.is_none() && this.rt.now() < due {
            this.sleep = Some(this.rt.sleep_until(due));
        }
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // A fired sleep is never polled again.
            this.sleep = None;
        }
        this.events.pop_front();
        Poll::Ready(match token {
            Token::Value(c) => Some(Ok(c)),
            Token::Error => Some(Err(MarbleError)),
            Token::End => {
                this.ended = true;
                None
            }
        })
    }
}

/// A cold source: a stream that plays `diagram` on `rt`'s clock, frame 0 being its
/// first poll. Values are `Ok(c)`; `#` yields `Err(MarbleError)` and then the stream
/// ends; `|` ends it; without either, it stays open after its last event.
///
/// # Panics
///
/// On a malformed diagram (see [`parse`]), or one with a `^`.
pub fn cold(rt: &SharedRuntime, diagram: &str) -> Marbles {
    let events = parse(diagram);
    assert!(
        !diagram.contains('^'),
        "{diagram:?}: a cold diagram has no subscription point"
    );
    Marbles {
        rt: rt.clone(),
        origin: None,
        events: events.into(),
        sleep: None,
        ended: false,
    }
}

/// A hot source: its diagram plays on `rt`'s clock whether anyone listens or not,
/// with `^` (or the first character, without one) at the instant [`hot`] was called.
/// Each [`subscribe`](Hot::subscribe) gives a stream of the events from the
/// subscription on: what happened before it (everything before the `^`, for a
/// subscription at once) is not seen, except that a subscriber that comes after the
/// end sees the end at once.
#[derive(Debug, Clone)]
pub struct Hot {
    rt: SharedRuntime,
    origin: Instant,
    events: Arc<Vec<(i64, Token)>>,
}

/// A hot source playing `diagram`; see [`Hot`].
///
/// # Panics
///
/// On a malformed diagram (see [`parse`]).
pub fn hot(rt: &SharedRuntime, diagram: &str) -> Hot {
    Hot {
        rt: rt.clone(),
        origin: rt.now(),
        events: Arc::new(parse(diagram)),
    }
}

impl Hot {
    /// The events at or after this instant, at their times.
    pub fn subscribe(&self) -> Marbles {
        let now = self.rt.now();
        let events = self
            .events
            .iter()
            .filter(|&&(frame, token)| token == Token::End || instant_of(self.origin, frame) >= now)
            .copied()
            .collect();
        Marbles {
            rt: self.rt.clone(),
            origin: Some(self.origin),
            events,
            sleep: None,
            ended: false,
        }
    }
}

/// What a stream yielded and when, from [`record_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording<T> {
    /// Each item with the time it came out, from the start of the recording.
    pub items: Vec<(Duration, T)>,
    /// When the stream ended, from the start of the recording.
    pub end: Duration,
}

/// Drives `stream` to its end and returns its items with their exact times, measured
/// on `rt`'s clock from the call.
///
/// # Panics
///
/// When the stream is still open after [`MAX_FRAMES`] frames.
pub async fn record_events<S: Stream>(rt: &SharedRuntime, stream: S) -> Recording<S::Item> {
    let start = rt.now();
    let mut limit = rt.sleep(FRAME * MAX_FRAMES);
    let mut stream = pin!(stream);
    let mut items = Vec::new();
    loop {
        let next = poll_fn(|cx| match stream.as_mut().poll_next(cx) {
            Poll::Ready(item) => Poll::Ready(Some(item)),
            Poll::Pending => limit.as_mut().poll(cx).map(|()| None),
        })
        .await;
        let at = rt.now() - start;
        match next {
            Some(Some(item)) => items.push((at, item)),
            Some(None) => return Recording { items, end: at },
            None => panic!(
                "the stream was still open after {MAX_FRAMES} frames; bound it with take or \
                 take_until, or give its diagram an end"
            ),
        }
    }
}

/// The frame `at` falls on.
///
/// # Panics
///
/// When `at` is between two frames.
pub fn frame_of(at: Duration) -> u64 {
    let frame = FRAME.as_nanos();
    assert!(
        at.as_nanos().is_multiple_of(frame),
        "an event at {at:?} falls between frames ({FRAME:?} each); compare record_events"
    );
    u64::try_from(at.as_nanos() / frame).expect("a sane number of frames")
}

/// Drives `stream` to its end and draws it, each item as the character `draw` gives
/// it (`#` for an error); see the [module docs](self).
///
/// # Panics
///
/// As [`record_events`] and [`render`], when an item comes out between frames, or
/// when `draw` gives a character a diagram cannot show as a value.
pub async fn record_with<S, F>(rt: &SharedRuntime, stream: S, mut draw: F) -> String
where
    S: Stream,
    F: FnMut(&S::Item) -> char,
{
    let recording = record_events(rt, stream).await;
    let mut events: Vec<(u64, Token)> = recording
        .items
        .iter()
        .map(|(at, item)| {
            let token = match draw(item) {
                '#' => Token::Error,
                c if c.is_ascii_alphanumeric() => Token::Value(c),
                other => panic!("{other:?} cannot stand for an item in a diagram"),
            };
            (frame_of(*at), token)
        })
        .collect();
    events.push((frame_of(recording.end), Token::End));
    render(&events)
}

/// Drives a stream of marbles to its end and draws it: `Ok(c)` as `c`, `Err` as `#`;
/// see [`record_with`].
pub async fn record<S>(rt: &SharedRuntime, stream: S) -> String
where
    S: Stream<Item = Marble>,
{
    record_with(rt, stream, |item| match item {
        Ok(c) => *c,
        Err(MarbleError) => '#',
    })
    .await
}

/// The marbles of `values`, in order: each character a value, `#` an error.
pub fn chars(values: &str) -> Vec<Marble> {
    values
        .chars()
        .map(|c| if c == '#' { Err(MarbleError) } else { Ok(c) })
        .collect()
}

/// A drawing for [`record_with`], as RxJS's values map: each item is drawn as its key
/// in `table`.
///
/// # Panics
///
/// The drawing panics on an item that `table` does not have, naming it.
pub fn values<T>(table: Vec<(char, T)>) -> impl FnMut(&T) -> char
where
    T: PartialEq + fmt::Debug,
{
    move |item| match table.iter().find(|(_, value)| value == item) {
        Some((key, _)) => *key,
        None => panic!("{item:?} is not in the table {table:?}"),
    }
}
