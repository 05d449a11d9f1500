//! [`HandlerOutcome`]: what a handler's future may return.

use crate::BoxError;

/// What a handler's future may return: `()`, or `Result<(), E>` for any error type
/// that converts into a boxed error (`anyhow::Error` does not; use `.map_err` or a
/// `Box<dyn Error>`).
///
/// Every handler flow of riverbed (bus handlers, reactive subscribers, queue
/// consumers) takes handlers whose futures return one of these.
pub trait HandlerOutcome: Send + 'static {
    /// The outcome as a result; the error's `Display` is recorded on failure.
    fn into_result(self) -> Result<(), BoxError>;
}

impl HandlerOutcome for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send + 'static> HandlerOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}
