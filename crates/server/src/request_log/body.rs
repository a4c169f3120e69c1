//! A response body that runs a function once when it ends: after its last frame is produced,
//! or when it is dropped unfinished (the client went away). The access log uses it so a
//! streamed response is logged, measured and audited when the stream ends, not when its
//! headers leave.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};

pub struct OnEnd<F: FnOnce(bool)> {
    inner: Body,
    /// Called with `true` when the body was sent whole, `false` when it was abandoned.
    on_end: Option<F>,
}

impl<F: FnOnce(bool)> OnEnd<F> {
    pub fn new(inner: Body, on_end: F) -> Self {
        OnEnd {
            inner,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(f) = self.on_end.take() {
            f(complete);
        }
    }
}

// `OnEnd` holds no self-references: moving it is fine, so it is `Unpin` when `F` is.
impl<F: FnOnce(bool) + Unpin> http_body::Body for OnEnd<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            // Finish before handing out the last frame, so the record exists by the time the
            // client has read the whole response.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finish(true),
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(bool)> Drop for OnEnd<F> {
    fn drop(&mut self) {
        // An empty body may never be polled; otherwise reaching here unfinished means the
        // client went away first.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
