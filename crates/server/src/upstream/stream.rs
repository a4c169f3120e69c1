//! Turns an upstream HTTP body into a stream of chunks through a format decoder,
//! with an idle timeout between reads. Dropping the stream drops the response, which
//! closes the upstream connection: that is how a client disconnect cancels the model call.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;

use super::{ChunkStream, StreamItem, UpstreamError};

pub(crate) type Items = VecDeque<Result<StreamItem, UpstreamError>>;

pub(crate) trait Decoder: Send + 'static {
    /// Decodes the next bytes; returns true once the format's end marker was seen.
    fn feed(&mut self, bytes: &[u8], out: &mut Items) -> bool;
    /// The body ended without an end marker.
    fn end(&mut self, out: &mut Items);
}

struct State<D> {
    resp: reqwest::Response,
    decoder: D,
    queue: Items,
    finished: bool,
    timeout: Duration,
}

pub(crate) fn decode<D: Decoder>(
    resp: reqwest::Response,
    decoder: D,
    timeout: Duration,
) -> ChunkStream {
    let state = State {
        resp,
        decoder,
        queue: VecDeque::new(),
        finished: false,
        timeout,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.queue.pop_front() {
                if item.is_err() {
                    // Nothing after an error is trustworthy.
                    st.queue.clear();
                    st.finished = true;
                }
                return Some((item, st));
            }
            if st.finished {
                return None;
            }
            match tokio::time::timeout(st.timeout, st.resp.chunk()).await {
                Err(_) => {
                    st.queue.push_back(Err(UpstreamError::Timeout));
                }
                Ok(Err(e)) => {
                    st.queue.push_back(Err(UpstreamError::from_transport(&e)));
                }
                Ok(Ok(None)) => {
                    st.decoder.end(&mut st.queue);
                    st.finished = true;
                }
                Ok(Ok(Some(bytes))) => {
                    if st.decoder.feed(&bytes, &mut st.queue) {
                        st.finished = true;
                    }
                }
            }
        }
    })
    .boxed()
}
