//! [`combine_latest_all`]: the latest item of each of many streams, as a `Vec`, each
//! time any of them has a new one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::COMBINE_BUDGET;

/// The latest item of every stream in `streams`, as a `Vec` in the order the streams
/// were given, each time any of them has a new item: the `combineLatest([...])` of
/// RxJS. [`ReactiveExt::combine_latest`](super::ReactiveExt::combine_latest) is the
/// two-stream form, with tuples.
///
/// * **Emission**: nothing until every stream has given an item; then one `Vec` for that
///   item and one for every later item of any stream, with the latest item of each.
///   Each item is cloned into every `Vec` emitted while it is the latest of its stream.
/// * **Completion**: when every stream has ended; or at once when a stream ends without
///   having given an item, since no `Vec` can be emitted after that (the other streams
///   are dropped then). A stream that ends after giving items keeps contributing its
///   last item. An empty collection gives a stream that ends at once.
/// * **Errors**: an `Err` item of a stream of `Result`s is an ordinary item: it becomes
///   that stream's latest and ends nothing.
/// * **Fairness**: each poll tries the streams in turn, starting after the one that gave
///   the last item, so a stream that is always ready cannot starve the others; each
///   poll costs up to one `poll_next` per live stream. The streams must be `Unpin`
///   (use `Box::pin` on those that are not), as for `futures::stream::select_all`.
///
/// ```
/// use futures::StreamExt;
/// use riverbed::reactive::ops::combine_latest_all;
///
/// # futures::executor::block_on(async {
/// let prices = combine_latest_all(vec![
///     futures::stream::iter([10, 11]).boxed(),
///     futures::stream::iter([20]).boxed(),
///     futures::stream::iter([30, 31]).boxed(),
/// ]);
/// // The first `Vec` comes once all three have a price; the streams are tried in turn.
/// assert_eq!(
///     prices.collect::<Vec<_>>().await,
///     [vec![10, 20, 30], vec![11, 20, 30], vec![11, 20, 31]],
/// );
/// # });
/// ```
pub fn combine_latest_all<I>(streams: I) -> CombineLatestAll<I::Item>
where
    I: IntoIterator,
    I::Item: Stream + Unpin,
{
    let streams: Vec<Option<I::Item>> = streams.into_iter().map(Some).collect();
    let n = streams.len();
    CombineLatestAll {
        latest: std::iter::repeat_with(|| None).take(n).collect(),
        missing: n,
        live: n,
        next: 0,
        done: n == 0,
        streams,
    }
}

/// Stream for [`combine_latest_all`]: the latest item of each input, as a `Vec`, each
/// time any input has a new one.
#[must_use = "streams do nothing unless polled"]
pub struct CombineLatestAll<S: Stream> {
    // `None` once that stream has ended.
    streams: Vec<Option<S>>,
    latest: Vec<Option<S::Item>>,
    // How many streams have not given an item yet.
    missing: usize,
    // How many streams have not ended.
    live: usize,
    // The stream to try first on the next poll.
    next: usize,
    done: bool,
}

// Nothing is pinned structurally: the streams are `Unpin` wherever they are polled,
// and the items are never pinned.
impl<S: Stream> Unpin for CombineLatestAll<S> {}

impl<S: Stream + Unpin> CombineLatestAll<S> {
    fn finish(&mut self) -> Poll<Option<Vec<S::Item>>> {
        self.done = true;
        self.streams.clear();
        self.latest.clear();
        Poll::Ready(None)
    }
}

impl<S> Stream for CombineLatestAll<S>
where
    S: Stream + Unpin,
    S::Item: Clone,
{
    type Item = Vec<S::Item>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let n = this.streams.len();
        // As in `CombineLatest`: rounds over the live streams until one gives an item;
        // items that cannot be emitted yet count against a budget.
        for _ in 0..COMBINE_BUDGET {
            let mut progressed = false;
            for offset in 0..n {
                let i = (this.next + offset) % n;
                let Some(stream) = this.streams[i].as_mut() else {
                    continue;
                };
                match Pin::new(stream).poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        if this.latest[i].replace(item).is_none() {
                            this.missing -= 1;
                        }
                        this.next = (i + 1) % n;
                        progressed = true;
                        if this.missing == 0 {
                            let all = this.latest.iter().flatten().cloned().collect();
                            return Poll::Ready(Some(all));
                        }
                        break;
                    }
                    Poll::Ready(None) => {
                        this.streams[i] = None;
                        this.live -= 1;
                        if this.latest[i].is_none() || this.live == 0 {
                            return this.finish();
                        }
                    }
                    Poll::Pending => {}
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // At most one `Vec` per item still to come from any stream.
        let upper = self.streams.iter().flatten().try_fold(0usize, |sum, s| {
            s.size_hint().1.and_then(|n| sum.checked_add(n))
        });
        (0, upper)
    }
}

impl<S> FusedStream for CombineLatestAll<S>
where
    S: Stream + Unpin,
    S::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S: Stream> fmt::Debug for CombineLatestAll<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CombineLatestAll")
            .field("streams", &self.streams.len())
            .field("live", &self.live)
            .field("without_value", &self.missing)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
