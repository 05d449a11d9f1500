//! What the operators over one upstream stream share: `upstream_access!`, the
//! accessors of that stream, and `upstream_hint`, what it may still yield.

use futures_core::Stream;

/// Declares `get_ref`, `get_mut`, `get_pin_mut` and `into_inner` for an operator
/// whose upstream stream is the pinned field `$field` of type `$inner`; invoked in
/// the operator's inherent `impl` block (which must be able to call the `project`
/// that `pin_project!` generates).
///
/// After the field come the doc comments of `into_inner`: they say what becomes of
/// what the operator holds, the one thing that differs between operators.
macro_rules! upstream_access {
    ($field:ident: $inner:ty, $(#[$into_inner_doc:meta])+) => {
        /// The upstream stream.
        pub fn get_ref(&self) -> &$inner {
            &self.$field
        }

        /// The upstream stream, mutably; taking items from it directly bypasses the
        /// operator.
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.$field
        }

        /// The upstream stream, pinned; taking items from it directly bypasses the
        /// operator.
        pub fn get_pin_mut(self: ::std::pin::Pin<&mut Self>) -> ::std::pin::Pin<&mut $inner> {
            self.project().$field
        }

        $(#[$into_inner_doc])+
        pub fn into_inner(self) -> $inner {
            self.$field
        }
    };
}

pub(crate) use upstream_access;

/// The size hint of what upstream may still yield: nothing once it has ended.
pub(crate) fn upstream_hint<S: Stream>(
    upstream: &S,
    upstream_done: bool,
) -> (usize, Option<usize>) {
    if upstream_done {
        (0, Some(0))
    } else {
        upstream.size_hint()
    }
}
