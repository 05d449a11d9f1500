//! The cross-runtime test matrix.
//!
//! [`run`] runs a test body on one [`Flavor`] of runtime; [`matrix!`] and
//! [`timed_matrix!`] turn one body into one `#[test]` per flavour, named
//! `<body name>::<flavour>` (`spawn_and_join::tokio_mt`, ...). The tokio and smol
//! flavours exist when the crate's `tokio` and `smol` features are on, so
//! `cargo test --no-default-features` runs the futures and virtual flavours only.
//!
//! [`marble`] describes streams, and records them, as marble diagrams on the virtual
//! clock.
#![allow(dead_code, unused_macros, unused_imports)]

mod futures_rt;
pub mod marble;

use std::future::Future;
use std::sync::Arc;

pub use futures_rt::FuturesRuntime;
use riverbed::runtime::{SharedRuntime, VirtualRuntime};

/// A runtime to run a test body on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Tokio, current-thread, time enabled.
    TokioCt,
    /// Tokio, multi-thread with two workers, time enabled.
    TokioMt,
    /// A smol executor driven by the test thread and one more thread.
    Smol,
    /// `futures::executor::block_on` over a `futures` thread pool, with
    /// `futures-timer`.
    Futures,
    /// The virtual clock: deterministic, time auto-advances.
    Virtual,
}

/// Builds the runtime of `flavor`, runs `body` on it to completion and shuts it down.
///
/// The body's future is polled on the test thread and need not be `Send`.
pub fn run<F, Fut>(flavor: Flavor, body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    match flavor {
        Flavor::TokioCt => run_tokio(flavor, body),
        Flavor::TokioMt => run_tokio(flavor, body),
        Flavor::Smol => run_smol(body),
        Flavor::Futures => {
            let rt: SharedRuntime = Arc::new(FuturesRuntime::new(2));
            futures::executor::block_on(body(rt));
        }
        Flavor::Virtual => {
            let virtual_rt = VirtualRuntime::new();
            let rt: SharedRuntime = Arc::new(virtual_rt.clone());
            virtual_rt.block_on(body(rt));
        }
    }
}

#[cfg(feature = "tokio")]
fn run_tokio<F, Fut>(flavor: Flavor, body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    use riverbed::runtime::TokioRuntime;
    let mut builder = match flavor {
        Flavor::TokioCt => tokio::runtime::Builder::new_current_thread(),
        Flavor::TokioMt => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        other => unreachable!("{other:?} is not a tokio flavour"),
    };
    let tokio_rt = builder
        .enable_time()
        .build()
        .expect("build a tokio runtime");
    let rt: SharedRuntime = Arc::new(TokioRuntime::from_handle(tokio_rt.handle().clone()));
    tokio_rt.block_on(body(rt));
}

#[cfg(not(feature = "tokio"))]
fn run_tokio<F, Fut>(flavor: Flavor, _body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    panic!("{flavor:?} needs riverbed's `tokio` feature");
}

#[cfg(feature = "smol")]
fn run_smol<F, Fut>(body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    use riverbed::runtime::SmolRuntime;
    let executor = Arc::new(smol::Executor::new());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let helper = {
        let executor = executor.clone();
        std::thread::Builder::new()
            .name("riverbed-smol-helper".into())
            .spawn(move || smol::block_on(executor.run(stopped.recv())))
            .expect("spawn the smol helper thread")
    };
    let rt: SharedRuntime = Arc::new(SmolRuntime::new(executor.clone()));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        smol::block_on(executor.run(body(rt)));
    }));
    // Closing the channel ends the helper's `run`, even after a failed body.
    drop(stop);
    // `recv` ends with an error once the channel is closed; that is the point.
    let _closed = helper.join().expect("the smol helper thread panicked");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[cfg(not(feature = "smol"))]
fn run_smol<F, Fut>(_body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    panic!("the smol flavour needs riverbed's `smol` feature");
}

/// One `#[test]` per flavour (`tokio_ct`, `tokio_mt`, `smol`, `futures`, `virtual`) for
/// bodies that need no timer:
///
/// ```ignore
/// matrix! {
///     /// Doc comments and attributes go onto every generated test.
///     async fn spawn_and_join(rt) {
///         assert_eq!(rt.spawn(async { 1 }).await.unwrap(), 1);
///     }
/// }
/// ```
///
/// `rt` is a `SharedRuntime`; any number of fns may be given.
macro_rules! matrix {
    ($($t:tt)*) => { $crate::common::matrix_impl!(futures: yes; $($t)*); };
}
pub(crate) use matrix;

/// As [`matrix!`], for bodies that need time: every flavour but `futures`, and
/// `virtual` runs on the virtual clock (which auto-advances when the body waits).
macro_rules! timed_matrix {
    ($($t:tt)*) => { $crate::common::matrix_impl!(futures: no; $($t)*); };
}
pub(crate) use timed_matrix;

/// The body of [`matrix!`] and [`timed_matrix!`]: one module per fn, one test per
/// flavour, the `futures` one only where `futures: yes`.
macro_rules! matrix_impl {
    (futures: $futures:ident; $($(#[$attr:meta])* async fn $name:ident($rt:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_variables)]
            async fn body($rt: ::riverbed::runtime::SharedRuntime) $body

            $crate::common::matrix_impl!(@test tokio_ct, TokioCt, feature = "tokio", $(#[$attr])*);
            $crate::common::matrix_impl!(@test tokio_mt, TokioMt, feature = "tokio", $(#[$attr])*);
            $crate::common::matrix_impl!(@test smol, Smol, feature = "smol", $(#[$attr])*);
            $crate::common::matrix_impl!(@futures $futures, $(#[$attr])*);
            $crate::common::matrix_impl!(@test r#virtual, Virtual, all(), $(#[$attr])*);
        }
    )*};
    (@futures yes, $(#[$attr:meta])*) => {
        $crate::common::matrix_impl!(@test futures, Futures, all(), $(#[$attr])*);
    };
    (@futures no, $(#[$attr:meta])*) => {};
    (@test $test:ident, $flavor:ident, $cfg:meta, $(#[$attr:meta])*) => {
        #[cfg($cfg)]
        #[test]
        $(#[$attr])*
        fn $test() {
            $crate::common::run($crate::common::Flavor::$flavor, body);
        }
    };
}
pub(crate) use matrix_impl;
